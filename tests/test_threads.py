"""Thread count from the cores the process may use, ``--threads`` and ``LAVIN_NUM_THREADS``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavin_core import threads
from lavin_core.cli import main


def test_cpu_max_lines():
    assert threads.parse_cpu_max("200000 100000\n") == 2.0
    assert threads.parse_cpu_max("150000 100000") == 1.5
    assert threads.parse_cpu_max("max 100000") is None
    assert threads.parse_cpu_max("garbage") is None


def test_cgroup_quota_from_v2_and_v1_files(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 0.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.cgroup_cpu_limit(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert threads.cgroup_cpu_limit(v1) is None
    assert threads.cgroup_cpu_limit(tmp_path / "missing") is None


@given(st.integers(1, 256), st.one_of(st.none(), st.floats(0.01, 300)))
def test_available_cores_is_the_affinity_capped_by_the_quota(affinity, quota):
    cores = threads.available_cores(affinity=affinity, quota=quota)
    assert 1 <= cores <= affinity
    if quota is not None:
        assert cores == max(1, min(affinity, -(-quota // 1)))


def test_choose_threads_order():
    assert threads.choose_threads(3, environ={"LAVIN_NUM_THREADS": "2"}, cores=8) == 3
    assert threads.choose_threads(None, environ={"LAVIN_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, cores=8) == 2
    assert threads.choose_threads(None, environ={"OMP_NUM_THREADS": "5"}, cores=8) == 5
    assert threads.choose_threads(None, environ={}, cores=8) == 8
    with pytest.raises(ValueError, match="LAVIN_NUM_THREADS"):
        threads.choose_threads(None, environ={"LAVIN_NUM_THREADS": "many"}, cores=8)
    with pytest.raises(ValueError, match="--threads"):
        threads.choose_threads(0, environ={}, cores=8)


def test_passive_waiting_keeps_the_users_choice():
    env: dict[str, str] = {}
    threads.passive_waiting(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.passive_waiting(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    env = {"KMP_BLOCKTIME": "200"}
    threads.passive_waiting(env)
    assert "OMP_WAIT_POLICY" not in env


@pytest.mark.parametrize("argv", [["--threads", "1", "tasks"], ["tasks", "--threads", "1"]])
def test_threads_option_before_or_after_the_command(argv, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_thread_count_is_one_line(capsys):
    assert main(["--threads", "0", "tasks"]) == 2
    assert capsys.readouterr().err.strip() == "lavin tasks: error: --threads must be a positive number of threads, got 0; e.g. 1 or " + str(threads.available_cores())

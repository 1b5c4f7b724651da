"""kill -9 at any moment of an export, a ``lavin run`` output write, a cache build or a training
run never leaves a visible file or folder that fails to load; two processes on one output both
finish and leave one complete result.

Each case runs a writer in a subprocess, kills it with SIGKILL at a few moments, and loads every
visible (not dot-prefixed) entry it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lavin_core.data.cache import open_cache
from lavin_core.data.images import to_pixels
from lavin_core.stvae import STVAE
from lavin_core.train.checkpointing import list_checkpoints

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def spawn(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the writer never got going")
        time.sleep(0.02)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def run_side_by_side(script: str, *args: str) -> None:
    """Two processes running ``script`` at once; both must succeed."""
    writers = [spawn(script, *args) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err.decode()[-1500:]


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


# A writer that saves a fresh tiny ST-VAE into one folder over and over, then says "round N".
SAVE_LOOP = """
    import sys, torch
    from lavin_core.stvae import STVAE
    for i in range(10_000):
        torch.manual_seed(i)
        STVAE.from_preset("lavin-tiny").save_pretrained(sys.argv[1])
        print(f"round {i}", flush=True)
"""


# The same through the trainer's export (streamed, gathered tensor by tensor).
EXPORT_LOOP = """
    import sys, torch
    from lavin_core.stvae import STVAE
    from lavin_core.train.checkpointing import export_pretrained
    for i in range(10_000):
        torch.manual_seed(i)
        model = STVAE.from_preset("lavin-tiny")
        export_pretrained(STVAE, model.config, model.state_dict(), sys.argv[1])
        print(f"round {i}", flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.3])
@pytest.mark.parametrize("script", [SAVE_LOOP, EXPORT_LOOP], ids=["save_pretrained", "export"])
def test_kill_during_save_pretrained_leaves_a_loadable_folder_or_none(tmp_path, delay, script):
    target = tmp_path / "export"
    writer = spawn(script, str(target))
    wait_for(lambda: any(tmp_path.iterdir()))  # the first temporary folder is being filled
    time.sleep(delay)
    kill(writer)
    for entry in visible(tmp_path):
        assert entry == target
        assert STVAE.from_pretrained(str(entry)).config == STVAE.from_preset("lavin-tiny").config


def test_two_processes_saving_one_folder_both_finish(tmp_path):
    target = tmp_path / "export"
    script = SAVE_LOOP.replace("range(10_000)", "range(3)")
    run_side_by_side(script, str(target))
    assert visible(tmp_path) == [target]
    loaded = STVAE.from_pretrained(str(target)).state_dict()
    expected = []
    for seed in range(3):
        torch.manual_seed(seed)
        expected.append(STVAE.from_preset("lavin-tiny").state_dict())
    assert any(all(torch.equal(loaded[k], e[k]) for k in loaded) for e in expected)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]


# A writer of one prediction file over and over (what `lavin run --out` does at its end).
IMAGE_LOOP = """
    import sys, torch
    from lavin_core.data.outputs import save_image
    for i in range(10_000):
        g = torch.Generator().manual_seed(i)
        save_image(torch.rand(3, 1, 512, 512, generator=g) * 2 - 1, sys.argv[1])
"""


@pytest.mark.parametrize("delay", [0.1])
def test_kill_during_an_output_write_leaves_a_whole_image(tmp_path, delay):
    out = tmp_path / "prediction.png"
    writer = spawn(IMAGE_LOOP, str(out))
    wait_for(out.exists)
    time.sleep(delay)
    kill(writer)
    assert visible(tmp_path) == [out]
    assert to_pixels(str(out)).shape == (3, 1, 512, 512)


def test_two_processes_writing_one_output_leave_one_whole_image(tmp_path):
    out = tmp_path / "prediction.png"
    script = IMAGE_LOOP.replace("range(10_000)", "range(3)")
    run_side_by_side(script, str(out))
    assert visible(tmp_path) == [out] and to_pixels(str(out)).shape == (3, 1, 512, 512)


def test_kill_during_lavin_run_leaves_no_broken_output(tmp_path):
    query = tmp_path / "q.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(query)
    out = tmp_path / "out" / "depth.png"
    command = [sys.executable, "-c", "import sys; from lavin_core.cli import main; sys.exit(main(sys.argv[1:]))", "run", "--task", "depth", "--query", str(query),
               "--out", str(out), "--quiet", "--ensemble", "1", "--steps", "2", "--schedule", "uniform"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    kill(process)
    if out.parent.exists():
        for entry in visible(out.parent):
            assert entry == out and to_pixels(str(entry)).shape == (3, 1, 64, 64)
    # and run to the end, the output is whole (--overwrite: on a fast machine the first run may
    # have finished before the kill)
    done = subprocess.run([*command, "--overwrite"], cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-1500:]
    assert to_pixels(str(out)).shape == (3, 1, 64, 64)


CACHE_WRITER = """
    import sys, time
    import registry
    from lavin_core.data.cache import build_cache
    from tests.standin import PoolEncoder

    class SlowEncoder(PoolEncoder):
        def encode(self, pixels, *, generator=None):
            time.sleep(0.02)
            return super().encode(pixels)

    SlowEncoder.__name__ = SlowEncoder.__qualname__ = "PoolEncoder"
    SlowEncoder.__module__ = "tests.standin"
    build_cache(registry.get_task("edges", size=32), SlowEncoder(), sys.argv[1], count=40, batch_size=3)
"""


@pytest.mark.parametrize("commits", [1, 7])
def test_kill_during_a_cache_build_leaves_only_whole_examples(tmp_path, commits):
    url = tmp_path / "edges.zarr"
    writer = spawn(CACHE_WRITER, str(url))
    folder = url / "commits"
    wait_for(lambda: folder.exists() and len([p for p in folder.glob("*.json") if not p.name.startswith(".")]) >= commits)
    kill(writer)
    cache = open_cache(str(url))
    assert len(cache) >= commits
    for pair in cache:  # every visible example is whole: no NaN fill, shapes right
        assert torch.isfinite(pair.input).all() and torch.isfinite(pair.target).all()


def test_kill_during_training_leaves_loadable_checkpoints_and_export(tmp_path):
    from lavin_core.train.toy import make_toy_workspace

    config = tmp_path / "config.toml"
    config.write_text(make_toy_workspace(tmp_path, pairs=6, size=32))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "lavin_core.train", str(config), "--out", str(run_dir),
               "--set", "run.steps=40", "--set", "checkpoint.every=1", "--set", "train.batch_size=2",
               "--set", "data.max_pairs=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: len(list_checkpoints(run_dir)) >= 2 or process.poll() is not None, timeout=180)
    kill(process)
    from lavin_core.train.checkpointing import read_model_weights

    saved = list_checkpoints(run_dir)
    assert saved
    for checkpoint in saved:  # sharded (DCP) checkpoints: every visible one loads whole
        assert (checkpoint / "meta.json").is_file()
        for name in ("model", "ema"):
            assert read_model_weights(checkpoint, name)
        torch.load(checkpoint / "trainer.pt", weights_only=True)
    visible_names = {p.name for p in visible(run_dir)}
    assert visible_names <= {"checkpoints", "config.toml", "metrics.jsonl", "export", "samples"}
    if "export" in visible_names:
        from lavin_core.jdit import JDiT

        JDiT.from_pretrained(str(run_dir / "export"))

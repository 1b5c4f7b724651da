"""The Zarr latent cache: bit-exact read back, resume after a kill, stale fingerprints, concurrent writers."""

from __future__ import annotations

import json
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
import zarr

import registry
from lavin_core.data.cache import CacheError, StaleCacheError, build_cache, open_cache
from lavin_core.cli import main
from tests.standin import PoolEncoder

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


@pytest.fixture(scope="module")
def task():
    return registry.get_task("depth", size=SIZE)


def expected_latents(task, encoder, index: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    pair = task.example(index, seed=seed).pair
    return encoder.encode(pair.input[None])[0], encoder.encode(pair.target[None])[0]


def assert_matches_task(cache, task, encoder, seed: int = 0) -> None:
    for pair in cache:
        want_input, want_target = expected_latents(task, encoder, pair.index, seed)
        assert torch.equal(pair.input, want_input) and torch.equal(pair.target, want_target), pair.index
        assert pair.id == task.example(pair.index, seed=seed).id


def writer_script(url: str, count: int, *, delay: float) -> str:
    """A separate process building ``url`` with a slow stand-in encoder."""
    return textwrap.dedent(f"""
        import time
        import registry
        from lavin_core.data.cache import build_cache
        from tests.standin import PoolEncoder

        class SlowEncoder(PoolEncoder):
            def encode(self, pixels, *, generator=None):
                time.sleep({delay})
                return super().encode(pixels)

        # the fingerprint includes the class name: match the parent's PoolEncoder
        SlowEncoder.__name__ = SlowEncoder.__qualname__ = "PoolEncoder"
        SlowEncoder.__module__ = "tests.standin"
        build_cache(registry.get_task("depth", size={SIZE}), SlowEncoder(), {url!r}, count={count}, batch_size=2)
    """)


def spawn(script: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stderr=subprocess.PIPE)


def test_build_and_read_back_bit_exact(task):
    encoder = PoolEncoder()
    cache = build_cache(task, encoder, "memory://cache-test/exact.zarr", count=7, batch_size=3)
    assert len(cache) == 7 and cache.complete and cache.task == "depth"
    assert_matches_task(cache, task, encoder)
    reopened = open_cache("memory://cache-test/exact.zarr", encoder=PoolEncoder())
    assert reopened.ids() == [task.example(i).id for i in range(7)]
    assert torch.equal(reopened[-1].target, cache[6].target)
    # the pipeline's LatentCache protocol: latents of exact pixels, None for unknown ones
    example = task.example(4)
    assert torch.equal(reopened.get(example.pair.target), cache[4].target)
    assert reopened.get(example.pair.target * 0.5) is None


def test_video_latents_and_local_paths(task, tmp_path):
    encoder = PoolEncoder()
    video = registry.get_task("frame_prediction", size=SIZE)
    built = build_cache(video, encoder, str(tmp_path / "clips.zarr"), count=2)
    read = open_cache(f"file://{tmp_path / 'clips.zarr'}")
    assert read[0].input.shape == (encoder.latent_channels, 2, SIZE // 8, SIZE // 8)
    assert torch.equal(read[1].target, built[1].target)


@pytest.mark.slow
def test_resume_after_a_kill_encodes_only_what_is_missing(task, tmp_path):
    url, count = str(tmp_path / "killed.zarr"), 24
    writer = spawn(writer_script(url, count, delay=0.3))
    commits = tmp_path / "killed.zarr" / "commits"
    deadline = time.monotonic() + 60
    # Commit files only: a hidden .tmp-* file is a commit still being written (pathlib's glob lists dot files).
    while time.monotonic() < deadline and len([p for p in commits.glob("[!.]*.json")] if commits.exists() else []) < 4:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    partial = open_cache(url)
    assert 4 <= len(partial) < count and not partial.complete
    assert_matches_task(partial, task, PoolEncoder())  # nothing half-written is visible

    # a chunk written by a writer killed before its commit stays invisible, and is rewritten
    torn = next(i for i in range(count) if i not in partial.indices)
    zarr.open_group(url, mode="r+")["inputs"][torn] = np.full(partial[0].input.shape, 7.0, np.float32)
    assert torn not in open_cache(url).indices

    encoder = PoolEncoder()
    resumed = build_cache(task, encoder, url, count=count, batch_size=2)
    missing = count - len(partial)
    assert encoder.calls == 2 * missing  # input + target of each missing example, done ones skipped
    assert resumed.complete
    assert_matches_task(resumed, task, encoder)


def test_stale_fingerprint_is_refused_with_a_clear_message(task):
    url = "memory://cache-test/stale.zarr"
    build_cache(task, PoolEncoder(seed=0), url, count=2)
    with pytest.raises(StaleCacheError, match="built with encoder PoolEncoder .* rebuild it"):
        open_cache(url, encoder=PoolEncoder(seed=1))
    with pytest.raises(StaleCacheError, match="another encoder, task option, seed or size"):
        build_cache(task, PoolEncoder(seed=1), url, count=2)
    with pytest.raises(StaleCacheError):
        build_cache(registry.get_task("depth", size=SIZE, max_depth=20.0), PoolEncoder(seed=0), url, count=2)
    with pytest.raises(StaleCacheError):
        build_cache(task, PoolEncoder(seed=0), url, count=2, seed=1)
    with pytest.raises(CacheError, match="created for 2 examples"):
        build_cache(task, PoolEncoder(seed=0), url, count=3)
    with pytest.raises(CacheError, match="no latent cache"):
        open_cache("memory://cache-test/missing.zarr")


@pytest.mark.slow
@pytest.mark.reliability  # issue 19: two processes on one cache
def test_two_concurrent_writers_leave_a_consistent_cache(task, tmp_path):
    url, count = str(tmp_path / "shared.zarr"), 16
    writers = [spawn(writer_script(url, count, delay=0.05)) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()[-2000:]
    cache = open_cache(url, encoder=PoolEncoder())
    assert cache.complete and cache.indices == list(range(count))
    assert_matches_task(cache, task, PoolEncoder())
    commit_files = sorted(p.name for p in (tmp_path / "shared.zarr" / "commits").iterdir())
    assert commit_files == [f"{i:08d}.json" for i in range(count)]  # no temporary files left
    for name in commit_files:
        record = json.loads((tmp_path / "shared.zarr" / "commits" / name).read_text())
        assert record["id"] == task.example(record["index"]).id


def test_cli_build_and_info(tmp_path, capsys):
    out = str(tmp_path / "cli.zarr")
    args = ["cache", "build", "--task", "edges", "--size", "32", "--count", "2", "--out", out, "--vae", "random:lavin-tiny"]
    assert main(args) == 0
    assert main(["cache", "info", out]) == 0
    text = capsys.readouterr().out
    assert "2 committed of 2" in text and "edges" in text and "STVAE" in text
    assert main(["cache", "build", "--task", "edges", "--count", "2", "--out", out, "--vae", "random:lavin-tiny"]) == 2
    assert "use a new --out URL" in capsys.readouterr().err


def test_examples_of_mixed_sizes_are_refused(tmp_path):
    from io import BytesIO

    from PIL import Image

    for name, size in (("a", 32), ("b", 48)):
        for role in ("input", "target"):
            buffer = BytesIO()
            Image.new("RGB", (size, size), (10, 200, 30)).save(buffer, format="PNG")
            (tmp_path / f"{name}_{role}.png").write_bytes(buffer.getvalue())
    task = registry.get_task("folder", path=str(tmp_path))
    with pytest.raises(CacheError, match="give the task a size"):
        build_cache(task, PoolEncoder(), "memory://cache-test/mixed.zarr", count=2, batch_size=1)


@pytest.mark.reliability  # issue 19: concurrent builders bit for bit
def test_the_bytes_of_an_example_do_not_depend_on_the_batch_size(task):
    """Two builders (or a resumed build) grouping examples differently write identical bytes: with
    the real ST-VAE, batched encoding differs in the last bits, so examples are encoded alone."""
    from lavin_core.stvae import STVAE

    torch.manual_seed(0)
    vae = STVAE.from_preset("lavin-tiny").eval()
    built = [build_cache(task, vae, f"memory://cache-test/batch-{size}.zarr", count=5, batch_size=size)
             for size in (5, 2)]
    for index in range(5):
        a, b = built[0].example(index), built[1].example(index)
        assert np.array_equal(a.input.numpy(), b.input.numpy()) and np.array_equal(a.target.numpy(), b.target.numpy())
        assert a.input.view(torch.int32).equal(b.input.view(torch.int32))  # bit for bit, not just ==


def test_a_loaded_cache_reads_the_same_examples_without_the_store(tmp_path):
    """``load`` reads every latent at once; examples are equal to the store's, and are copies."""
    url = str(tmp_path / "c.zarr")
    build_cache(registry.get_task("map_hue_rotate", size=32), PoolEncoder(), url, count=6, group_size=3)
    stored, loaded = open_cache(url), open_cache(url).load()
    assert len(loaded) == len(stored) == 6
    for a, b in zip(stored, loaded):
        assert torch.equal(a.input, b.input) and torch.equal(a.target, b.target) and a.id == b.id
    loaded[0].input.add_(1.0)
    assert torch.equal(loaded[0].input, stored[0].input)  # the loaded arrays were not changed through a view

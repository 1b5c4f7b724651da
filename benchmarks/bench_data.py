"""How fast the data side is: example generation per task, latent-cache reads and loader batches.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_data [--size 64]

Every time is printed with its ratio to the baseline measured in the same run: one render of a
random scene at the same size (the unit every scene task builds on).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import registry
from lavin_core.data.cache import build_cache, open_cache
from lavin_core.data.loader import ContextLoader
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks import BUILTIN_TASKS
from tests.standin import PoolEncoder


def per_call(fn, repeats: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    size, repeats = args.size, args.repeats

    scenes = [random_scene(np.random.default_rng(i)) for i in range(repeats)]
    counter = iter(range(10**9))
    baseline = per_call(lambda: render(scenes[next(counter) % repeats], size, size), repeats)
    print(f"baseline: one {size}x{size} scene render  {baseline * 1e3:8.2f} ms")

    def report(what: str, seconds: float) -> None:
        print(f"{what:<44} {seconds * 1e3:8.2f} ms  {seconds / baseline:6.1f}x baseline")

    for cls in BUILTIN_TASKS:
        task = cls(size=size)
        counter = iter(range(10**9))
        report(f"example of {cls.name}", per_call(lambda: task.example(next(counter)), max(3, repeats // 4)))

    with tempfile.TemporaryDirectory() as folder:
        task = registry.get_task("depth", size=size)
        url = f"{folder}/depth.zarr"
        start = time.perf_counter()
        build_cache(task, PoolEncoder(), url, count=64, batch_size=16)
        report("cache build, per example (stand-in encoder)", (time.perf_counter() - start) / 64)
        cache = open_cache(url)
        counter = iter(range(10**9))
        report("cache read of one pair", per_call(lambda: cache[next(counter) % len(cache)], repeats))
        loader = ContextLoader([cache], batch_size=8, seed=0)
        counter = iter(range(10**9))
        report("loader batch of 8 contexts from the cache", per_call(lambda: loader.batch(next(counter)), 5))
    loader = ContextLoader({"depth": 1.0, "pose": 1.0}, batch_size=8, seed=0)
    counter = iter(range(10**9))
    report("loader batch of 8 contexts on the fly", per_call(lambda: loader.batch(next(counter)), 5))


if __name__ == "__main__":
    main()

"""J-DiT throughput on the CPU: forward and training step, eager vs ``torch.compile(fullgraph=True)``.

    OMP_NUM_THREADS=1 python benchmarks/bench_jdit.py                 # lavin-tiny, 2 pairs, 128x128 images
    python benchmarks/bench_jdit.py --preset lavin-tiny --pairs 4 --size 256 --batch 2 --steps 5

Prints tokens per second for each mode and the compiled / eager ratio, all measured in one run
(median per call, the modes timed alternately so that other load on the machine hits both alike).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from lavin_core.jdit import JDiT, get_preset


def median_seconds(steps: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Per mode: (seconds of the first ``warmup`` calls, median seconds per call over ``repeats``).

    The modes are timed alternately, call by call, so that load from other processes on a
    shared machine falls on all of them alike.
    """
    first, samples = {}, {name: [] for name in steps}
    for name, step in steps.items():
        start = time.perf_counter()
        for _ in range(warmup):
            step()
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append(time.perf_counter() - start)
    return {name: (first[name], statistics.median(samples[name])) for name in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lavin-tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2, help="example pairs in the context")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = get_preset(args.preset)
    side = args.size // 8
    z = torch.randn(args.batch, config.in_channels, 1, side, side)
    cond = torch.randn(args.batch, config.in_channels, 2 * args.pairs + 1, side, side)
    t = torch.rand(args.batch)
    target = torch.randn_like(z)
    tokens = args.batch * (2 * args.pairs + 2) * (side // config.patch_size) ** 2
    print(
        f"{args.preset}, batch {args.batch}, {args.pairs} pairs, {args.size}x{args.size} images: "
        f"{tokens} tokens per call, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )

    models = {"eager": JDiT(config)}
    models["compiled"] = copy.deepcopy(models["eager"])
    nets = {"eager": models["eager"], "compiled": torch.compile(models["compiled"], fullgraph=True)}
    optimizers = {mode: torch.optim.AdamW(m.parameters(), lr=1e-4) for mode, m in models.items()}

    def forward(mode: str) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                nets[mode](z, t, cond)

        return step

    def train_step(mode: str) -> Callable[[], None]:
        def step() -> None:
            loss = (nets[mode](z, t, cond) - target).square().mean()
            loss.backward()
            optimizers[mode].step()
            optimizers[mode].zero_grad(set_to_none=True)

        return step

    for kind, make in (("forward", forward), ("train step", train_step)):
        for model in models.values():
            model.train(kind == "train step")
        timings = median_seconds({mode: make(mode) for mode in models}, args.warmup, args.steps)
        for mode, (first, per_call) in timings.items():
            print(
                f"  {mode:8s} {kind:10s}: {per_call * 1e3:8.1f} ms/call, {tokens / per_call:9.0f} tokens/s "
                f"(warm-up {first:.1f} s)"
            )
        print(f"  compiled / eager {kind} throughput: {timings['eager'][1] / timings['compiled'][1]:.2f}x")


if __name__ == "__main__":
    main()

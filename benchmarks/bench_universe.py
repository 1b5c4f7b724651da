"""What the retraining on the task universe costs per step: making a context on the fly against
one J-DiT training step, for candidate architectures (the choice between fresh generation and caches).

    OMP_NUM_THREADS=2 python -m benchmarks.bench_universe [--pairs 4] [--batch 16] [--bf16]

Prints seconds per item and, for each, its ratio to one lavin-tiny training step measured in
the same run: when making a batch of contexts costs a fraction of a step, fresh contexts (a new
task instance every one) are affordable; when it costs more, caches of instance groups are.
"""

from __future__ import annotations

import argparse
import time

import torch

import registry
from lavin_core.data.loader import ContextLoader
from lavin_core.flow import training_pair
from lavin_core.jdit import JDiT, get_preset
from lavin_core.stvae import STVAE
from lavin_plugins.tasks import TRAINING_UNIVERSE

#: Candidates within the 40 MB fp16 budget (ST-VAE included): name -> preset overrides.
CANDIDATES = {
    "lavin-tiny (192 x 4)": {},
    "192 x 8 (lavin-tiny-deep)": {"depth": 8},
    "288 x 6": {"hidden_size": 288, "depth": 6, "num_heads": 6, "num_kv_heads": 2},
    "384 x 8": {"hidden_size": 384, "depth": 8, "num_heads": 8, "num_kv_heads": 4},
}


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def step_time(overrides: dict, batch: int, pairs: int, frame: int, repeats: int,
              bf16: bool = False) -> tuple[float, int]:
    model = JDiT(get_preset("lavin-tiny", **overrides))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cond = torch.randn(batch, 16, 2 * pairs + 1, frame, frame)
    z = torch.randn(batch, 16, 1, frame, frame)

    def step():
        t = torch.rand(batch)
        z_t, v = training_pair(z, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = (model(z_t, t, cond).float() - v).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return timed(step, repeats), sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (training's precision = auto on a "
                        "CPU with AVX-512 BF16 or AMX)")
    args = parser.parse_args()
    frame = args.size // 8

    base, _ = step_time({}, args.batch, args.pairs, frame, args.repeats, args.bf16)
    print(f"baseline: one lavin-tiny training step, batch {args.batch}, {args.pairs} pairs, "
          f"{frame * frame // 4} tokens per frame: {base:.3f} s")
    for name, overrides in CANDIDATES.items():
        seconds, params = step_time(overrides, args.batch, args.pairs, frame, args.repeats, args.bf16)
        print(f"J-DiT step {name:22s} {params / 1e6:5.1f}M params ({params * 2 / 2**20:5.1f} MB fp16): "
              f"{seconds:.3f} s = {seconds / base:.2f} x")

    tasks = {registry.get_task(n, size=args.size, **o): 1.0 for n, o in TRAINING_UNIVERSE.items()}
    loader = ContextLoader(tasks, batch_size=args.batch, min_pairs=args.pairs, max_pairs=args.pairs, seed=0)
    steps = iter(range(10**6))
    make = timed(lambda: loader.batch(next(steps)), max(args.repeats * 2, len(tasks) // 4))
    print(f"fresh batch of {args.batch} contexts ({len(tasks)} tasks, a new instance each): "
          f"{make:.3f} s = {make / base:.2f} x")
    vae = STVAE.from_preset("lavin-tiny")
    pixels = torch.rand(args.batch * (2 * args.pairs + 2), 3, 1, args.size, args.size) * 2 - 1
    with torch.no_grad():
        encode = timed(lambda: vae.encode(pixels), args.repeats)
    print(f"ST-VAE encode of that batch's {len(pixels)} images: {encode:.3f} s = {encode / base:.2f} x")


if __name__ == "__main__":
    main()

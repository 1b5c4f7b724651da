"""Sampling precision on this machine: the pipeline's sampling (encode, Euler steps with CFG,
no decoding) with the J-DiT in float32 against bf16 autocast (``--precision bf16``), timed
alternately in one process, and how far the bf16 latents land from the float32 ones. Run from
the repository root with nothing else running:

    python -m benchmarks.bench_sampling                          # lavin-tiny-icl, 36 contexts, 19 steps
    python -m benchmarks.bench_sampling --model configs/lavin-tiny-icl/lavin-tiny-icl-deep --repeats 2

It prints what ``--precision auto`` picks here (``devices.native_bf16``): bf16 pays only where
the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX); elsewhere it is emulated and slower.
"""

from __future__ import annotations

import argparse

import lavin_core  # noqa: F401  first: it sets OpenMP's passive waiting before torch loads

import torch

from benchmarks.bench_jdit import median_seconds
from lavin_core.devices import autocast_dtype, native_bf16
from lavin_core.evaluation.cases import build_task, draw_cases
from lavin_core.pipeline import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lavin-tiny-icl", help="model name or folder (default: lavin-tiny-icl)")
    parser.add_argument("--task", default="depth", help="task whose contexts are sampled (default: depth)")
    parser.add_argument("--contexts", type=int, default=36, help="contexts sampled at once (default: 36, the demo's)")
    parser.add_argument("--steps", type=int, default=19, help="Euler steps (default: 19)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per precision (default: 3)")
    args = parser.parse_args()

    pipe = load_pipeline(args.model)
    size = pipe.defaults.processing_size or 64
    cases = draw_cases(build_task(args.task, size=size), args.contexts, num_pairs=4, seed=2026)
    contexts = [case.context() for case in cases]
    latents = {}

    def sample(precision: str):
        def call():
            pipe.precision = precision
            latents[precision] = pipe(contexts, num_steps=args.steps, seed=0, processing_size=0,
                                      output_type="latent", progress=False).latents
        return call

    timed = median_seconds({"fp32": sample("fp32"), "bf16": sample("bf16")}, warmup=1, repeats=args.repeats)
    fp32, bf16 = torch.stack(latents["fp32"]), torch.stack(latents["bf16"])
    cpu = torch.device("cpu")
    auto = autocast_dtype("auto", cpu)
    print(f"{args.model}, {args.contexts} {args.task} contexts of 4 pairs at {size} px, {args.steps} Euler steps "
          f"with CFG {pipe.guidance_scale}, {torch.get_num_threads()} threads; native bf16: {native_bf16(cpu)}, "
          f"so --precision auto = {'bf16' if auto is not None else 'fp32'}")
    print("| precision | seconds (median) | speed vs fp32 |")
    print("|---|---|---|")
    for name in ("fp32", "bf16"):
        print(f"| {name} | {timed[name][1]:.2f} | {timed['fp32'][1] / timed[name][1]:.2f}x |")
    print(f"bf16 latents vs fp32: {((bf16 - fp32).norm() / fp32.norm()).item():.4f} relative RMS difference")


if __name__ == "__main__":
    main()

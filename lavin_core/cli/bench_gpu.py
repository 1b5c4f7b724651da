"""``lavin bench-gpu``: time the fused kernels and the fast GPU inference path against their baselines."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench-gpu",
        help="time the fused QK-norm + RoPE kernel, one J-DiT forward and CFG sampling on a CUDA GPU",
        description="Builds a J-DiT preset with random bf16 weights on the GPU and times, in one run: the fused "
        "kernel vs the PyTorch reference vs torch.compile of it (GB/s, forward and backward), one J-DiT "
        "forward, and Euler sampling with CFG (eager, regional compile, CUDA graphs). Prints a table and "
        "writes JSON. Needs CUDA.",
    )
    parser.add_argument("--preset", default="lavin-3.4b", help="J-DiT preset (default: lavin-3.4b)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default: 512)")
    parser.add_argument("--pairs", type=int, default=4, help="example pairs in the context (default: 4)")
    parser.add_argument("--steps", type=int, default=19, help="Euler steps (default: 19, the official grid)")
    parser.add_argument("--guidance-scale", type=float, default=1.5, help="CFG scale (default: 1.5)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (reference kernel and regional)")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="skip the CUDA-graph variant")
    parser.add_argument("--kernel-only", action="store_true", help="time only the QK-norm + RoPE kernel")
    parser.add_argument("--json", default="bench_gpu.json", help="where to write the results (default: bench_gpu.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kernels.bench_gpu import BenchOptions, format_report, run_benchmark, write_report

    options = BenchOptions(
        preset=args.preset,
        image_size=args.size,
        pairs=args.pairs,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        compile=not args.no_compile,
        cuda_graphs=not args.no_cuda_graphs,
        model_sections=not args.kernel_only,
    )
    report = run_benchmark(options, save=lambda partial: write_report(partial, args.json))
    print()
    print(format_report(report))
    print(f"\nwrote {args.json}")
    return 0

"""Sampling threads on this CPU: the pipeline (encode, Euler steps with CFG, decode, the context
copy) with its chunks sampled and decoded on one thread against ``CPU_SAMPLING_WORKERS`` threads
(``lavin_core.pipeline.workers``), timed alternately in one process, and whether the answers
match exactly. Run from the repository root with nothing else running:

    python -m benchmarks.bench_workers                       # lavin-tiny-icl, 36 contexts, 6 samples each
    python -m benchmarks.bench_workers --batch-size 32            # the chunks of lavin bench and demo
    python -m benchmarks.bench_workers --tasks depth inpainting --contexts 8 --samples 1
"""

from __future__ import annotations

import argparse

import lavin_core  # noqa: F401  first: it sets OpenMP's passive waiting before torch loads

import torch

import lavin_core.pipeline.workers as workers
from benchmarks.bench_jdit import median_seconds
from lavin_core.evaluation.cases import build_task, draw_cases
from lavin_core.pipeline import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lavin-tiny-icl", help="model name or folder (default: lavin-tiny-icl)")
    parser.add_argument("--tasks", nargs="+", default=["depth", "inpainting", "map_flip"],
                        help="tasks whose contexts are sampled, in turn (default: depth inpainting map_flip)")
    parser.add_argument("--contexts", type=int, default=36, help="contexts sampled at once (default: 36)")
    parser.add_argument("--samples", type=int, default=6, help="samples per context (default: 6)")
    parser.add_argument("--steps", type=int, default=19, help="Euler steps (default: 19)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per chunk (default: none, every row of one shape at once; bench and demo use 32)")
    parser.add_argument("--context-copy", choices=("on", "off"), default=None,
                        help="the context copy (default: the model's recommendation); its fits run on a thread of "
                             "their own either way")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per setting (default: 2)")
    args = parser.parse_args()

    pipe = load_pipeline(args.model)
    size = pipe.defaults.processing_size or 64
    per_task = -(-args.contexts // len(args.tasks))
    contexts = [case.context() for name in args.tasks
                for case in draw_cases(build_task(name, size=size), per_task, num_pairs=3, seed=2026)][: args.contexts]
    threads = workers.CPU_SAMPLING_WORKERS
    copy = None if args.context_copy is None else args.context_copy == "on"
    copying = pipe.defaults.context_copy if copy is None else copy
    answers = {}

    def sample(count: int):
        def call():
            workers.CPU_SAMPLING_WORKERS = count
            answers[count] = pipe(contexts, num_samples=args.samples, num_steps=args.steps, seed=0,
                                  processing_size=0, batch_size=args.batch_size, context_copy=copy,
                                  progress=False).predictions
        return call

    timed = median_seconds({1: sample(1), threads: sample(threads)}, warmup=1, repeats=args.repeats)
    workers.CPU_SAMPLING_WORKERS = threads
    same = all(torch.equal(a, b) for a, b in zip(answers[1], answers[threads]))
    print(f"{args.model}, {len(contexts)} contexts ({', '.join(args.tasks)}) of 3 pairs at {size} px, "
          f"{args.samples} samples each, {args.steps} Euler steps, chunks of {args.batch_size or 'every row'}, "
          f"context copy {'on' if copying else 'off'}, {torch.get_num_threads()} intra-op threads")
    print("| sampling threads | seconds (median) | speed vs 1 |")
    print("|---|---|---|")
    for count in (1, threads):
        print(f"| {count} | {timed[count][1]:.2f} | {timed[1][1] / timed[count][1]:.2f}x |")
    print(f"answers identical: {same}")


if __name__ == "__main__":
    main()

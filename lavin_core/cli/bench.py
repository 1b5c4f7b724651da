"""``lavin bench``: the model against three training-free baselines, per task, on fresh examples.

    lavin bench                                   # lavin-tiny on every task, 16 cases each
    lavin bench --tasks depth edges --count 8 --out bench/

Baselines: copy the query; the mean of the example targets; the target of the example whose
input is nearest to the query; for video tasks, the same model run on each frame alone. Writes ``bench.json`` and ``bench.md`` into ``--out``.
"""

from __future__ import annotations

import argparse

from lavin_core.cli.demo import add_model_arguments, open_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="score the model and three training-free baselines on fresh examples of each task",
        description=__doc__.split("\n\n")[0],
        epilog="Examples come from the task generators with --seed (default 2026; training never uses it). "
               "Every prediction is read back by the task and scored with its metrics; * marks the main metric.",
    )
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help="tasks to score (default: every registered task that needs no options)")
    parser.add_argument("--count", type=int, default=16, metavar="N", help="cases per task (default: 16)")
    parser.add_argument("--num-pairs", type=int, default=3, metavar="K", help="example pairs per case (default: 3)")
    parser.add_argument("--seed", type=int, default=2026, metavar="S", help="example and noise seed (default: 2026)")
    parser.add_argument("--out", default="lavin-bench", metavar="DIR", help="output folder (default: lavin-bench/)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lavin_core.evaluation.bench import run_bench, text_table, write_bench
    from lavin_core.evaluation import buildable_tasks

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    if args.num_pairs < 1:
        raise ValueError(f"--num-pairs must be at least 1, got {args.num_pairs}")
    pipe, name, trained, size, options = open_model(args)
    tasks = args.tasks or _default_tasks(buildable_tasks(size), trained)
    result = run_bench(pipe, tasks, model_name=name, trained_tasks=trained, count=args.count,
                       num_pairs=args.num_pairs, seed=args.seed, size=size, num_steps=options.num_steps,
                       guidance_scale=options.guidance_scale, temperature=options.temperature,
                       ensemble_size=options.num_samples, progress=not args.no_progress)
    print(text_table(result))
    print(f"\n{name} beats the best baseline on the main metric (*) of {result['wins_on_trained']} of "
          f"{result['trained_count']} trained tasks")
    if result["per_frame_count"]:
        print(f"{name} beats the per-frame model (each frame alone) on the temporal metric of "
              f"{result['temporal_wins_vs_per_frame']} of {result['per_frame_count']} video tasks")
    json_path, md_path = write_bench(result, args.out)
    print(f"wrote {json_path} and {md_path}")
    return 0


def _default_tasks(available: list[str], trained: tuple[str, ...] | None) -> list[str]:
    """Trained tasks first (in training order), then the others."""
    first = [t for t in (trained or ()) if t in available]
    return first + [t for t in available if t not in first]

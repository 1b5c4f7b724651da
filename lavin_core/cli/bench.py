"""``lavin bench``: the model against training-free baselines, per task, on fresh examples.

    lavin bench                                   # lavin-tiny on every task, 16 cases each
    lavin bench --split held-out --num-pairs 1 2 4    # held-out tasks, score against the number of pairs
    lavin bench --tasks depth edges --count 8 --task-option depth:style=drawn --out bench/

Baselines: copy the query; the query blurred by one pixel; the mean of the example targets; the
target of the example whose input is nearest to the query; for video tasks, the same model run
on each frame alone. Writes ``bench.json`` (schema in ``lavin_core.evaluation.bench``) and
``bench.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from lavin_core.cli.demo import add_model_arguments, open_model
from lavin_core.cli.sampling import compile_if_long
from lavin_core.cli.task_options import add_task_option_argument, task_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="score the model and training-free baselines on fresh examples of each task",
        description=__doc__.split("\n\n")[0],
        epilog="Examples come from the task generators with --seed (default 2026; training never uses it). "
               "Every prediction is read back by the task and scored with its metrics; * marks the main metric.",
    )
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help="tasks to score (default: every registered task of --split that builds)")
    parser.add_argument("--split", default="all", choices=("trained", "held-out", "all"),
                        help="which tasks by default: the model's trained tasks, the held-out ones (declared held "
                             "out, or plugin tasks the model never saw), or all (default)")
    add_task_option_argument(parser)
    parser.add_argument("--count", type=int, default=16, metavar="N", help="cases per task (default: 16)")
    parser.add_argument("--num-pairs", type=int, nargs="+", default=[3], metavar="K",
                        help="example pairs per case (default: 3); several values sweep the score against "
                             "the number of pairs on the same queries")
    parser.add_argument("--seed", type=int, default=2026, metavar="S", help="example and noise seed (default: 2026)")
    parser.add_argument("--out", default="lavin-bench", metavar="DIR", help="output folder (default: lavin-bench/)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lavin_core.evaluation import buildable_tasks
    from lavin_core.evaluation.bench import run_bench, split_tasks, summary_line, sweep_table, text_table, write_bench

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    if min(args.num_pairs) < 1:
        raise ValueError(f"--num-pairs must be at least 1, got {min(args.num_pairs)}")
    pipe, name, trained, size, options = open_model(args)
    if args.tasks:
        tasks = list(args.tasks)
        per_task = task_options(args.task_option, tasks)
    else:
        import registry

        every = registry.list_tasks()
        available, failed = buildable_tasks(size, task_options(args.task_option, every) if args.task_option else None)
        tasks = split_tasks(available, args.split, trained)
        for task in split_tasks(list(failed), args.split, trained):  # only the split's own are news
            reason = failed[task]
            print(f"skipped task {task!r}: {reason} (to score it, name it with --tasks {task} and give the "
                  f"options it needs with --task-option {task}:KEY=VALUE)", file=sys.stderr)
        per_task = task_options(args.task_option, tasks) if args.task_option else {}
    # The sweep's smallest pair count for every case: a cautious count of the work.
    compile_if_long(pipe, options, queries=len(tasks) * args.count * len(args.num_pairs),
                    num_pairs=min(args.num_pairs), size=size)
    result = run_bench(pipe, tasks, model_name=name, trained_tasks=trained, task_options=per_task, count=args.count,
                       num_pairs=args.num_pairs, seed=args.seed, size=size, num_steps=options.num_steps,
                       guidance_scale=options.guidance_scale, temperature=options.temperature,
                       ensemble_size=options.num_samples, progress=not args.no_progress)
    print(text_table(result))
    if "pairs_sweep" in result:
        print("\nmain metric against the number of example pairs (same queries):")
        print(sweep_table(result))
    print(f"\n{summary_line(result)}")
    if result["per_frame_count"]:
        print(f"{name} beats the per-frame model (each frame alone) on the temporal metric of "
              f"{result['temporal_wins_vs_per_frame']} of {result['per_frame_count']} video tasks")
    json_path, md_path = write_bench(result, args.out)
    print(f"wrote {json_path} and {md_path}")
    return 0

"""``lavin demo``: the shipped lavin-tiny predicting a fresh query of each task from a few examples.

    lavin demo                                   # -> lavin-demo/demo.png, lavin-demo/metrics.json
    lavin demo --tasks depth edges --seed 7 --out my-demo/

Needs no network and no arguments; a couple of minutes at most on a laptop CPU.
"""

from __future__ import annotations

import argparse

from lavin_core.cli.sampling import add_model_arguments as add_model_flags
from lavin_core.cli.sampling import add_sampling_arguments, compile_if_long, open_pipeline, sampling_options
from lavin_core.cli.task_options import add_task_option_argument


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and sampling options ``demo`` and ``bench`` share."""
    add_model_flags(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--size", type=int, metavar="PX",
                        help="image side (default: the model's training size, else 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_model(args: argparse.Namespace):
    """``(pipeline, model name, trained tasks or None, image size, options)`` from the shared arguments;
    ``options`` is the resolved ``SamplingOptions`` (the model's recommended ensemble included)."""
    options = sampling_options(args, seed=args.seed)
    pipe, options = open_pipeline(args, options, combining=True)
    folder = pipe.folder
    index = {} if folder is None else folder.index
    name = "model" if folder is None else folder.name
    replaced = args.dit is not None or args.vae is not None
    trained = None if folder is None or replaced else folder.trained_tasks
    size = args.size if args.size is not None else int(index.get("image_size", 64))  # 0 is refused, not the default
    if size < 1 or size % pipe.size_multiple:
        raise ValueError(f"--size must be a positive multiple of {pipe.size_multiple}, got {size}")
    return pipe, name, trained, size, options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run lavin-tiny on a fresh example of each task; writes a picture grid and metrics",
        description=__doc__.split("\n\n")[0],
        epilog="Queries and example pairs come from the built-in task generators with --seed (default 2026, "
               "which training never uses). With scikit-image installed, restoration tasks also run on its "
               "sample photos.",
    )
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help="tasks to show (default: the tasks the model was trained on)")
    add_task_option_argument(parser)
    parser.add_argument("--num-pairs", type=int, default=3, metavar="K", help="example pairs per task (default: 3)")
    parser.add_argument("--seed", type=int, default=2026, metavar="S", help="example and noise seed (default: 2026)")
    parser.add_argument("--no-photos", action="store_true", help="skip the scikit-image photo rows")
    parser.add_argument("--out", default="lavin-demo", metavar="DIR", help="output folder (default: lavin-demo/)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from lavin_core.cli.task_options import task_options
    from lavin_core.evaluation.demo import DEMO_TASKS, animation_name, clip_rows, run_demo, text_table, write_demo

    if args.num_pairs < 1:
        raise ValueError(f"--num-pairs must be at least 1, got {args.num_pairs}")
    start = time.perf_counter()
    pipe, name, trained, size, options = open_model(args)
    tasks = args.tasks or list(trained or DEMO_TASKS)
    compile_if_long(pipe, options, queries=len(tasks), num_pairs=args.num_pairs, size=size)
    rows = run_demo(pipe, tasks, num_pairs=args.num_pairs, seed=args.seed, size=size, num_steps=options.num_steps,
                    guidance_scale=options.guidance_scale, temperature=options.temperature,
                    ensemble_size=options.num_samples, photos=False if args.no_photos else None,
                    task_options=task_options(args.task_option, tasks), progress=not args.no_progress)
    meta = {"model": name, "seed": args.seed, "num_pairs": args.num_pairs, "image_size": size,
            "sampler": args.sampler, "num_steps": pipe.step_count(options),
            "sampling_dtype": str(pipe.sampling_dtype).removeprefix("torch."),
            "guidance_scale": options.guidance_scale, "temperature": options.temperature,
            "ensemble_size": options.num_samples}
    png, metrics = write_demo(rows, args.out, meta=meta)
    print(text_table(rows, name))
    print(f"\nwrote {png} and {metrics} in {time.perf_counter() - start:.0f} s "
          f"(a row per task: example pairs, query, prediction, ground truth)")
    animated = clip_rows(rows)
    if animated:
        print(f"wrote an animated GIF per clip task in {args.out}: "
              + ", ".join(animation_name(row) for row in animated) + " (query | prediction | truth)")
    return 0

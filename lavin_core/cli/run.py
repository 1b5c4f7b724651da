"""``lavin run``: in-context prediction for one query image from example pairs.

    lavin run --task depth --query photo.png --out depth.png        # the shipped lavin-tiny
    lavin run --task depth --query photo.png --prompts templates/depth/ \\
        --dit lavin_dit.safetensors --vae stvae.pt --out depth.png

``--prompts`` is a folder in the official template layout (``NAME_input.png`` / ``NAME_target.png``);
without it the pairs are drawn from the registered task's own examples by a prompt sampler.
``--model`` names a shipped model (default ``lavin-tiny``) or a model folder (``dit/`` + ``vae/``).
``--dit`` / ``--vae`` take one of our checkpoint folders, the authors' files, or ``random:PRESET``
(e.g. ``random:lavin-tiny``) for randomly initialised models, which produce noise; given both,
no model is loaded, given one, it replaces that part of ``--model``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="predict the target of a query image from a few example pairs",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Without --dit and --vae the shipped lavin-tiny runs (--model). "
            "--dit and --vae take a folder written by save_pretrained, the authors' lavin_dit.safetensors "
            "and stvae.pt, or random:PRESET (e.g. random:lavin-tiny) for random weights (output is noise). "
            "Example pairs are resized to the query's size."
        ),
    )
    parser.add_argument("--task", required=True, help="task name (from `lavin tasks`); with --prompts any label")
    parser.add_argument("--query", required=True, help="the query image (path or fsspec URL)")
    parser.add_argument("--prompts", metavar="DIR", help="template folder of NAME_input.png / NAME_target.png pairs")
    parser.add_argument("--num-pairs", type=int, default=4, metavar="N", help="example pairs in the context (default: 4)")
    parser.add_argument("--prompt-sampler", default="random", metavar="NAME",
                        help="how pairs are chosen from the task's examples without --prompts (default: random)")
    add_sampling_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="noise and example seed (default: 0)")
    parser.add_argument("--sampler", default="euler", metavar="NAME",
                        help="euler (official), heun or adams-bashforth (default: euler)")
    parser.add_argument("--schedule", metavar="NAME",
                        help="time grid: official, uniform or shifted (default: the sampler's)")
    parser.add_argument("--resize", action="store_true",
                        help="resize a query whose sides are not multiples of 16 to the nearest size that is")
    parser.add_argument("--model", metavar="NAME",
                        help="shipped model name or model folder (default: lavin-tiny unless --dit and --vae are given)")
    parser.add_argument("--dit", metavar="PATH", help="J-DiT checkpoint (see below)")
    parser.add_argument("--vae", metavar="PATH", help="ST-VAE checkpoint (see below)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the prediction (PNG)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--steps``, ``--guidance``, ``--temperature`` and ``--ensemble``, shared by run, demo and bench."""
    parser.add_argument("--steps", type=int, metavar="N", help="sampling steps (default: the sampler's, 19 for euler)")
    parser.add_argument("--guidance", type=float, metavar="S",
                        help="CFG scale; 1 disables it (default: the model's recommended one, else the official 1.5)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="starting-noise scale; below 1 trades diversity for fidelity, 0 is deterministic "
                             "(default: the model's recommended one, else 1)")
    parser.add_argument("--ensemble", type=int, metavar="K",
                        help="samples per query, combined by the task into one answer (mean image, median box, "
                             "the sample that agrees most with the others, ...) (default: the model's recommended "
                             "number, else 1; `run` needs a registered --task for more than 1)")


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """One-line errors for the ``add_sampling_arguments`` options before any model loads."""
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    if args.guidance is not None and args.guidance < 0:
        raise ValueError(f"--guidance must be >= 0, got {args.guidance}")
    if args.temperature is not None and args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (1 = the noise the model was trained on), got {args.temperature}")
    if args.ensemble is not None and args.ensemble < 1:
        raise ValueError(f"--ensemble must be at least 1 sample per query, got {args.ensemble}")


def _check_numbers(args: argparse.Namespace) -> None:
    check_sampling_arguments(args)
    if args.num_pairs < 1:
        raise ValueError(f"--num-pairs must be at least 1, got {args.num_pairs}")


def model_spec(args: argparse.Namespace) -> str | None:
    """The model ``--model`` names; the default model unless both ``--dit`` and ``--vae`` are given."""
    from lavin_core.pretrained import DEFAULT_MODEL

    if args.model is not None:
        return args.model
    return None if args.dit is not None and args.vae is not None else DEFAULT_MODEL


def _task_pairs(args: argparse.Namespace, query, size):
    """Example pairs from the registered task's examples, chosen by the prompt sampler."""
    import torch

    import registry
    from lavin_core.context import ExamplePair
    from lavin_core.data.images import resize

    task = registry.get_task(args.task)
    chooser = registry.get_prompt_sampler(args.prompt_sampler)
    pool = [
        ExamplePair(input=resize(e.pair.input, size), target=resize(e.pair.target, size))
        for e in task.examples(max(4 * args.num_pairs, 16), seed=args.seed)
    ]
    if not pool:
        raise ValueError(f"task {args.task!r} yielded no examples; pass --prompts DIR")
    indices = chooser.select(pool, query, args.num_pairs, generator=torch.Generator().manual_seed(args.seed))
    return [pool[i] for i in indices]


def run(args: argparse.Namespace) -> int:
    import torch

    from lavin_core.context import TaskContext
    from lavin_core.evaluation import combine_samples
    from lavin_core.data.images import check_size, fit_size, resize, save_image, to_pixels
    from lavin_core.pipeline import load_pipeline
    from lavin_core.data.templates import read_template_folder

    _check_numbers(args)
    query = to_pixels(args.query, what=args.query)
    options = {} if args.schedule is None else {"schedule": args.schedule}
    pipe = load_pipeline(model_spec(args), dit=args.dit, vae=args.vae, sampler=args.sampler,
                         device=args.device, **options)
    pipe.sampler.timesteps(args.steps)  # a step count the schedule lacks fails here, before any work

    multiple = pipe.size_multiple
    if args.resize:
        query = resize(query, fit_size(*query.shape[-2:], multiple))
    check_size(query, multiple, f"the query {args.query}")
    size = tuple(query.shape[-2:])
    if args.prompts:
        pairs = read_template_folder(args.prompts, size=size, limit=args.num_pairs)
    else:
        pairs = _task_pairs(args, query, size)

    task = _combining_task(args, size)
    samples = 1 if task is None else args.ensemble or _recommended_ensemble(args)
    context = TaskContext(task=args.task, pairs=pairs, query=query)
    out = pipe(
        [context] * samples,  # one batch; the generator gives each copy its own noise
        num_steps=args.steps,
        guidance_scale=args.guidance,
        temperature=args.temperature,
        generator=torch.Generator().manual_seed(args.seed),
        progress=not args.quiet,
    )
    prediction = combine_samples(task, out.predictions) if samples > 1 else out.predictions[0]
    save_image(prediction, args.out)
    height, width = prediction.shape[-2:]
    combined = f", {samples} samples combined" if samples > 1 else ""
    print(f"wrote {args.out} ({width}x{height}, {len(pairs)} example pairs, task {args.task}{combined})")
    return 0


def _combining_task(args: argparse.Namespace, size: tuple[int, int]):
    """The registered task, built at the query's size, that combines several samples; None when
    one sample is all there is: ``--ensemble 1``, or no ``--ensemble`` and a model that recommends
    none, or a ``--task`` that is only a label (allowed with ``--prompts``) or cannot take this
    size, unless ``--ensemble`` asked for more, which is then an error."""
    import registry
    from lavin_core.errors import LavinError

    if args.ensemble == 1 or (args.ensemble is None and _recommended_ensemble(args) == 1):
        return None
    try:
        return registry.get_task(args.task, size=size)
    except (LavinError, LookupError, ValueError, TypeError) as err:
        if args.ensemble is None:
            return None
        raise ValueError(f"--ensemble {args.ensemble} needs a registered task that can draw {size[1]}x{size[0]} "
                         f"answers to combine the samples, and task {args.task!r} cannot ({err}); use --ensemble 1") from None


def _recommended_ensemble(args: argparse.Namespace) -> int:
    from lavin_core.pretrained import get_model

    spec = model_spec(args)
    if spec is None or args.dit is not None or args.vae is not None:
        return 1
    return get_model(spec).ensemble_size or 1

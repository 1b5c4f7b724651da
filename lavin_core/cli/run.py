"""``lavin run``: in-context prediction for one query image or clip from example pairs.

    lavin run --task depth --query photo.png --out depth.png        # the shipped lavin-tiny
    lavin run --task video_depth --query walk.mp4 --out depth.mp4   # a clip of any length
    lavin run --task depth --query photo.png --prompts templates/depth/ \\
        --dit lavin_dit.safetensors --vae stvae.pt --out depth.png

``--prompts`` is a folder in the official template layout (``NAME_input.png`` / ``NAME_target.png``),
which defines the task by itself; without it the pairs are drawn from the registered ``--task``'s own
examples by a prompt sampler. Queries are processed at the model's size (lavin-tiny: 64 px on the
longer side) and the prediction is resized back to the query's size; a query whose longer side is
more than 16 times that is read scaled down to 16 times it, with a warning, before it fills memory.
A query clip (``.mp4`` with the ``video`` extra, animated ``.gif`` / ``.png``, a folder of
frames) longer or shorter than the example clips is predicted in windows of their length
(``lavin_core.pipeline.windows``); ``--out`` picks the format by its extension and keeps the
query's frame rate.
``--model`` names a shipped model (default ``lavin-tiny``) or a model folder (``dit/`` + ``vae/``).
``--dit`` / ``--vae`` take one of our checkpoint folders, the authors' files, or ``random:PRESET``
(e.g. ``random:lavin-tiny``) for randomly initialised models, which produce noise; given both,
no model is loaded, given one, it replaces that part of ``--model``.
"""

from __future__ import annotations

import argparse

from lavin_core.cli.sampling import (add_model_arguments, add_sampling_arguments, compile_if_long, open_pipeline,
                                     sampling_options)
from lavin_core.cli.task_options import add_task_option_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="predict the target of a query image from a few example pairs",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Without --dit and --vae the shipped lavin-tiny runs (--model). "
            "--dit and --vae take a folder written by save_pretrained, the authors' lavin_dit.safetensors "
            "and stvae.pt, or random:PRESET (e.g. random:lavin-tiny) for random weights (output is noise). "
            "The query is processed at the model's size and the prediction resized back to the query's; "
            "example pairs are resized to the processing size."
        ),
    )
    parser.add_argument("--task", help="task name (from `lavin tasks`); with --prompts optional, any label")
    add_task_option_argument(parser)
    parser.add_argument("--query", required=True,
                        help="the query: an image, a clip (.mp4, animated .gif or .png) or a folder of frames "
                             "(path or fsspec URL)")
    parser.add_argument("--prompts", metavar="DIR",
                        help="template folder of NAME_input.png / NAME_target.png pairs (or clips: NAME_input.mp4, "
                             ".gif, or NAME_input/ frame folders)")
    parser.add_argument("--num-pairs", type=int, metavar="N",
                        help="example pairs in the context (default: the most the model was trained with, "
                             "3 for lavin-tiny; else the official 4)")
    parser.add_argument("--prompt-sampler", default="random", metavar="NAME",
                        help="how pairs are chosen from the task's examples without --prompts (default: random)")
    add_sampling_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="noise and example seed (default: 0)")
    parser.add_argument("--processing-size", type=int, metavar="PX",
                        help="longer side the query is processed at (default: the model's own, 64 for "
                             "lavin-tiny; 0 keeps the query's size, which must then be a multiple of 16)")
    parser.add_argument("--resize", action="store_true",
                        help="with --processing-size 0: resize a query whose sides are not multiples of 16 "
                             "to the nearest size that is")
    parser.add_argument("--window-overlap", type=int, metavar="N",
                        help="frames shared by neighbouring windows of a long query clip (default: 1; 0 for "
                             "image pairs, which predict frame by frame)")
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="where to write the prediction; its extension picks the format (.png, .jpg, .webp, "
                             ".bmp, .tif; a clip: .png (animated), .gif, .mp4); written atomically; an existing "
                             "file is refused unless --overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from lavin_core.data.images import check_size, decode_side, fit_size, read_clip, resize
    from lavin_core.data.outputs import check_output_path, save_image
    from lavin_core.data.video import DEFAULT_FPS
    from lavin_core.pipeline.adaptation import unseen_task_note
    from lavin_core.pipeline.inputs import task_at, task_pairs
    from lavin_core.pipeline.windows import predict_clip

    options = sampling_options(args, seed=args.seed, num_pairs=args.num_pairs, processing_size=args.processing_size)
    if args.task is None and args.prompts is None:
        raise ValueError("name the task: --task NAME (see `lavin tasks`), or --prompts DIR with example pairs")
    if args.window_overlap is not None and args.window_overlap < 0:
        raise ValueError(f"--window-overlap must be a number of frames >= 0, got {args.window_overlap}")
    check_output_path(args.out, overwrite=args.overwrite)  # before the model loads
    registered = args.task is not None and args.task in _task_names()
    pipe, options = open_pipeline(args, options, combining=registered or not args.prompts)
    # Decoded no larger than the model can use (images.decode_side): scaled down when it is processed
    # at a smaller size anyway, refused when it is to be processed at its own (--processing-size 0).
    own_size = options.processing_size == 0
    max_side = decode_side(pipe.defaults.processing_size if own_size else options.processing_size)
    # every frame, any count: windows fit the length below
    clip = read_clip(args.query, max_side=max_side, oversize="refuse" if own_size else "resize")
    query = clip.pixels
    check_output_path(args.out, overwrite=args.overwrite, frames=query.shape[1])  # before any sampling
    if options.processing_size == 0:
        if args.resize:
            query = resize(query, fit_size(*query.shape[-2:], pipe.size_multiple))
        check_size(query, pipe.size_multiple, f"the query {args.query}")
    size = pipe.processing_shape(*query.shape[-2:], options.processing_size)
    if registered and args.dit is None and args.vae is None and pipe.folder is not None:
        # a registered task against the trained tasks of these very weights; a label of --prompts says nothing
        note = unseen_task_note(args.task, pipe.folder.trained_tasks, options.adapt_steps)
        if note:
            warnings.warn(note, stacklevel=1)
    if pipe.max_pairs is not None and options.num_pairs > pipe.max_pairs:
        warnings.warn(f"--num-pairs {options.num_pairs}: this model was trained with at most {pipe.max_pairs} "
                      f"example pairs per context; more may not help", stacklevel=1)
    if registered or not args.prompts:
        from lavin_core.cli.task_options import task_options
        from lavin_core.seeds import context_seed

        given = task_options(args.task_option, [args.task])[args.task] if args.task_option else {}
        # a task drawn per context: one instance, from --seed, draws the pairs and reads the answer
        task = task_at(args.task, size, given).instance(context_seed(args.seed, 0))
    else:
        task = None
    if args.prompts:
        from lavin_core.data.templates import read_template_folder

        pairs = read_template_folder(args.prompts, size=size, limit=options.num_pairs)
    else:
        pairs = task_pairs(task, resize(query, size), options.num_pairs, prompt_sampler=args.prompt_sampler,
                           seed=args.seed)
    compile_if_long(pipe, options, queries=1, num_pairs=len(pairs), size=min(size))
    calls = []

    def predict(window_pairs, frames):
        calls.append(pipe(pairs=window_pairs, query=frames, task=task, options=options, progress=not args.quiet))
        return calls[-1].predictions[0]

    prediction = predict_clip(predict, pairs, query, overlap=args.window_overlap,
                              frame_aligned=getattr(task, "frame_aligned", True))
    save_image(prediction, args.out, fps=clip.fps, overwrite=args.overwrite)
    height, width = prediction.shape[-2:]
    samples = len(calls[0].samples[0])
    combined = f", {samples} samples combined" if samples > 1 else ""
    if prediction.shape[1] > 1:
        windows = f" in {len(calls)} windows" if len(calls) > 1 else ""
        combined += f", {prediction.shape[1]} frames at {clip.fps or DEFAULT_FPS:g} fps{windows}"
    label = args.task or "from --prompts"
    processed = f", processed at {size[1]}x{size[0]}" if tuple(size) != (height, width) else ""
    print(f"wrote {args.out} ({width}x{height}, {len(pairs)} example pairs, task {label}{combined}{processed})")
    return 0


def _task_names() -> list[str]:
    import registry

    return registry.list_tasks()

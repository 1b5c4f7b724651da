"""The sampling and model options ``run``, ``demo`` and ``bench`` share, read into one
``SamplingOptions`` value before any model loads (its checks are the only ones)."""

from __future__ import annotations

import argparse

import attrs

from lavin_core.devices import PRECISIONS

#: ``SamplingOptions`` field -> the flag that sets it, for error messages.
FLAGS = {
    "num_steps": "--steps",
    "schedule": "--schedule",
    "guidance_scale": "--guidance",
    "temperature": "--temperature",
    "num_samples": "--ensemble",
    "seed": "--seed",
    "num_pairs": "--num-pairs",
    "processing_size": "--processing-size",
    "adapt_steps": "--adapt-steps",
    "adapt_lr": "--adapt-lr",
    "context_copy": "--context-copy",
}


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sampler``, ``--steps``, ``--schedule``, ``--guidance``, ``--temperature``, ``--ensemble``,
    ``--adapt-steps``, ``--adapt-lr`` and ``--context-copy``."""
    parser.add_argument("--sampler", default="euler", metavar="NAME",
                        help="euler (official), heun or adams-bashforth (default: euler)")
    parser.add_argument("--steps", type=int, metavar="N", help="sampling steps (default: the sampler's, 19 for euler)")
    parser.add_argument("--schedule", metavar="NAME",
                        help="time grid: auto, official, uniform or shifted (default: the sampler's; euler's "
                             "'auto' is the authors' grid at 19/29/39 steps and uniform at any other count)")
    parser.add_argument("--guidance", type=float, metavar="S",
                        help="CFG scale; 1 disables it (default: the model's recommended one, else the official 1.5)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="starting-noise scale; below 1 trades diversity for fidelity, 0 is deterministic "
                             "(default: the model's recommended one, else 1)")
    parser.add_argument("--ensemble", type=int, metavar="K",
                        help="samples per query, combined into one answer: by the task (mean image, median box, "
                             "the sample that agrees most with the others, ...) or, for a free label, by the "
                             "pixel mean (default: the model's recommended number for a task, else 1)")
    parser.add_argument("--adapt-steps", type=int, metavar="N",
                        help="test-time adaptation: fine-tune the J-DiT N steps on each context's own pairs "
                             "(each held out in turn) before answering it, then restore it; needs 2 or more "
                             "pairs, about 0.15 s a step for lavin-tiny on 2 CPU cores (default: the model's "
                             "recommended number, else 0)")
    parser.add_argument("--adapt-lr", type=float, metavar="LR",
                        help="learning rate of --adapt-steps (AdamW; default: the model's, else 1e-3)")
    parser.add_argument("--context-copy", choices=("on", "off"), metavar="on|off",
                        help="keep the query's pixels where the example pairs keep their input's: a small "
                             "classifier fitted on the pairs per context, about 0.3 s each on 2 CPU cores "
                             "(default: the model's recommendation, else off)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--dit``, ``--vae``, ``--device`` and ``--precision``."""
    parser.add_argument("--model", metavar="NAME",
                        help="shipped model name or model folder (dit/ + vae/) (default: lavin-tiny unless "
                             "--dit and --vae are both given)")
    parser.add_argument("--dit", metavar="PATH",
                        help="J-DiT checkpoint replacing the model's: a save_pretrained folder, the authors' "
                             "lavin_dit.safetensors, or random:PRESET")
    parser.add_argument("--vae", metavar="PATH",
                        help="ST-VAE checkpoint replacing the model's: a save_pretrained folder, the authors' "
                             "stvae.pt, or random:PRESET")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, metavar="P",
                        help="the J-DiT's arithmetic while sampling: fp32, bf16 (autocast) or auto (bf16 where the "
                             "device multiplies bf16 in hardware: a GPU, a CPU with AVX-512 BF16 or AMX) "
                             "(default: the model's recommended one, else fp32)")


def sampling_options(args: argparse.Namespace, **fields):
    """A ``SamplingOptions`` from the parsed flags (and ``fields``); a bad value is one line naming its flag."""
    from lavin_core.samplers.options import OptionError, SamplingOptions

    values = {"num_steps": args.steps, "schedule": args.schedule, "guidance_scale": args.guidance,
              "temperature": args.temperature, "num_samples": args.ensemble, "adapt_steps": args.adapt_steps,
              "adapt_lr": args.adapt_lr, "context_copy": None if args.context_copy is None else args.context_copy == "on",
              **fields}
    try:
        return SamplingOptions(**values)
    except OptionError as err:
        raise ValueError(f"{FLAGS.get(err.field, err.field)}: {err}") from None


def model_spec(args: argparse.Namespace) -> str | None:
    """The model ``--model`` names; the default model unless both ``--dit`` and ``--vae`` are given."""
    from lavin_core.pretrained import DEFAULT_MODEL

    if args.model is not None:
        return args.model
    return None if args.dit is not None and args.vae is not None else DEFAULT_MODEL


def open_pipeline(args: argparse.Namespace, options, *, combining: bool):
    """The pipeline the flags name, and ``options`` resolved against its defaults (see
    ``InContextPipeline.resolve``; a step count or schedule the sampler cannot take fails here)."""
    from lavin_core.pipeline import load_pipeline

    pipe = load_pipeline(model_spec(args), dit=args.dit, vae=args.vae, sampler=args.sampler, device=args.device,
                         precision=args.precision)
    resolved = pipe.resolve(options, combining=combining)
    # demo and bench sample through pipe.sampler, so --schedule goes into it (it reached only `lavin run` before),
    # and through pipe.defaults, so --adapt-steps, --adapt-lr and --context-copy go into those
    pipe.sampler = pipe.sampler_for(resolved)
    pipe.defaults = attrs.evolve(pipe.defaults, adapt_steps=resolved.adapt_steps, adapt_lr=resolved.adapt_lr,
                                 context_copy=resolved.context_copy)
    return pipe, resolved


def compile_if_long(pipe, options, *, queries: int, num_pairs: int, size: int) -> None:
    """Regional compile of the J-DiT when the samples ahead take long enough to repay it
    (``lavin_core.pipeline.compile_policy``): a whole ``lavin bench`` does, one ``lavin run`` or
    the demo of lavin-tiny does not. A note on stderr when it compiles."""
    import sys

    from lavin_core.pipeline.compile_policy import compile_pipeline_if_it_pays

    if compile_pipeline_if_it_pays(pipe, options, queries=queries, num_pairs=num_pairs, image_size=size):
        print(f"compiling the J-DiT's blocks: {queries} queries x {options.num_samples or 1} samples repay "
              "the compile time", file=sys.stderr)

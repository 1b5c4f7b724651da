"""``lavin cache``: encode a task's examples once into a Zarr latent cache, and inspect one.

    lavin cache build --task depth --count 10000 --out file:///data/depth.zarr --vae stvae.pt
    lavin cache info file:///data/depth.zarr

A build that is interrupted resumes where it stopped when run again with the same arguments;
two builds of the same cache may run at once (see ``lavin_core.data.cache`` for the scheme).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache", help="build or inspect a Zarr latent cache of a task's examples")
    commands = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    build = commands.add_parser(
        "build",
        help="encode COUNT examples of a task into a Zarr cache (resumes an interrupted build)",
        description="Encode examples of a task once, keyed by a fingerprint of the encoder weights and the preprocessing.",
    )
    build.add_argument("--task", required=True, help="a task name (see `lavin tasks`)")
    build.add_argument("--count", required=True, type=int, help="number of examples")
    build.add_argument("--out", required=True, metavar="URL", help="cache location: a path or fsspec URL (file://, s3://, memory://)")
    build.add_argument(
        "--vae", default="lavin-tiny", metavar="SPEC",
        help="the encoder: a model name or folder (its vae/), a save_pretrained folder, the authors' stvae.pt, "
             "or random:PRESET (default: lavin-tiny, the shipped model)",
    )
    build.add_argument("--seed", type=int, default=0, help="example seed (default 0)")
    build.add_argument("--size", type=int, default=None, help="image size passed to the task (e.g. 64)")
    build.add_argument(
        "--task-option", "--option", action="append", default=[], metavar="KEY=VALUE", dest="task_option",
        help="a task option (see `lavin tasks`; VALUE is read as JSON if it parses, else as text); repeatable",
    )
    build.add_argument("--group-size", type=int, default=9, metavar="N",
                       help="examples per drawn instance, for a task drawn per context (default 9: a query and up to 8 pairs)")
    build.add_argument("--batch-size", type=int, default=8, help="examples made and committed per round (default 8); each is encoded on its own, so the "
                            "cache's bytes do not depend on it")
    build.add_argument("--device", default="cpu", help="device for the encoder (default cpu)")
    build.set_defaults(func=run_build)

    info = commands.add_parser("info", help="show what a cache holds and how it was built")
    info.add_argument("url", metavar="URL")
    info.set_defaults(func=run_info)


def run_build(args: argparse.Namespace) -> int:
    import registry
    from lavin_core.cli.task_options import task_options
    from lavin_core.data.cache import build_cache
    from lavin_core.pretrained import load_encoder

    options = task_options(args.task_option, [args.task])[args.task]
    if args.size is not None:
        options["size"] = args.size
    task = registry.get_task(args.task, **options)
    encoder = load_encoder(args.vae, device=args.device)
    cache = build_cache(task, encoder, args.out, count=args.count, seed=args.seed, batch_size=args.batch_size,
                        group_size=args.group_size, progress=True)
    print(f"{cache.url}: {len(cache)} of {cache.count} examples of {cache.task!r}, fingerprint {cache.fingerprint[:12]}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from lavin_core.data.cache import open_cache

    cache = open_cache(args.url)
    first = cache[0] if len(cache) else None
    print(f"cache        {cache.url}")
    print(f"task         {cache.task}")
    print(f"examples     {len(cache)} committed of {cache.count}{'' if cache.complete else ' (incomplete: run the build again to resume)'}")
    print(f"encoder      {cache.attrs['encoder']} (weights {cache.attrs['encoder_fingerprint'][:12]})")
    print(f"fingerprint  {cache.fingerprint[:12]}")
    print(f"task options {cache.attrs['preprocessing']['task_repr']}, seed {cache.attrs['preprocessing']['seed']}")
    if first is not None:
        print(f"latents      input {tuple(first.input.shape)}, target {tuple(first.target.shape)} float32")
    return 0

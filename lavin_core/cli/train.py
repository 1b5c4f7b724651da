"""``lavin train CONFIG``: train the ST-VAE or the J-DiT, alone or under ``torchrun``."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the ST-VAE or the J-DiT from a TOML config (single process or under torchrun)",
        description="Train from a config file. Under `torchrun --nproc_per_node N` every rank runs this "
                    "same command (DDP, or FSDP2 for large presets).",
    )
    parser.add_argument("config", help="TOML (or YAML) config, e.g. configs/lavin-tiny/dit.toml")
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<run.name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=3e-4 (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lavin_core.train.config import load_config
    from lavin_core.train.trainer import train

    config = load_config(args.config, args.overrides)
    export = train(config, args.out or f"runs/{config.run.name}", resume=args.resume)
    print(f"exported weights: {export}")
    return 0

"""``lavin plot-loss RUN_DIR``: a PNG of a training run's loss curves."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot-loss", help="draw the loss curves of a training run as a PNG")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the folder of a `lavin train` run")
    parser.add_argument("-o", "--output", help="PNG to write (default RUN_DIR/loss.png)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lavin_core.train.plot import plot_loss

    print(plot_loss(args.run_dir, args.output))
    return 0

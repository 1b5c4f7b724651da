"""The ``lavin`` command. Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which adds a parser and sets ``func(args) -> int | None`` as its default. Modules import heavy
dependencies inside ``func`` so that ``lavin --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from lavin_core import threads
from lavin_core.errors import LavinError

#: The subcommand modules, in the order ``lavin --help`` lists them.
COMMANDS = (
    "lavin_core.cli.demo",
    "lavin_core.cli.tasks",
    "lavin_core.cli.plugins",
    "lavin_core.cli.run",
    "lavin_core.cli.app",
    "lavin_core.cli.train",
    "lavin_core.cli.plot_loss",
    "lavin_core.cli.cache",
    "lavin_core.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavin",
        description="LaVin: one vision model for many tasks, each defined by a few example pairs.",
    )
    verbose = "on an error, also print its full details (e.g. every mismatched tensor name of a checkpoint)"
    parser.add_argument("--verbose", action="store_true", help=verbose)
    thread_help = (f"CPU threads (default: ${threads.THREADS_ENV}, else $OMP_NUM_THREADS, else the cores this "
                   "process may use: affinity and cgroup quota)")
    parser.add_argument("--threads", type=int, metavar="N", help=thread_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    # Also after the subcommand (`lavin demo --threads 1`, `lavin run ... --verbose`); SUPPRESS keeps
    # a value given before it.
    for command in subparsers.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)
        command.add_argument("--threads", type=int, metavar="N", default=argparse.SUPPRESS, help=thread_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lavin`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default", UserWarning)
        warnings.showwarning = lambda message, *_: print(f"lavin {args.command}: warning: {message}", file=sys.stderr)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        threads.set_threads(threads.choose_threads(args.threads))
        status = args.func(args) or 0
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        # The reader went away (`lavin tasks | head`): stop quietly, as cat and ls do. Point stdout
        # at /dev/null so that the final flush at exit cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status of a Unix tool killed by a closed pipe
    except (LavinError, ValueError, FileNotFoundError, FileExistsError) as exc:
        # Bad input is reported in one line; anything else is a bug and keeps its traceback.
        print(f"lavin {args.command}: error: {exc}", file=sys.stderr)
        if args.verbose and callable(getattr(exc, "details", None)):
            print(exc.details(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lavin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

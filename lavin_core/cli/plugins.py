"""``lavin plugins``: every plugin found, what it provides, and why a broken one did not load."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plugins", help="list installed plugins, their status and what they provide")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import registry
    from lavin_core.evaluation.table import format_table
    from registry.manager import DISABLE_ENV

    reg = registry.default_registry()
    rows = []
    for record in reg.plugins():
        provided = reg.provided_by(record.name)
        summary = "; ".join(f"{kind}s: {', '.join(names)}" for kind, names in provided.items() if names)
        detail = record.error if record.status != "ok" else summary or "(registers nothing)"
        rows.append([record.name, record.source, record.status, detail])
    print(format_table(["plugin", "source", "status", "provides / error"], rows) if rows else "no plugins found")
    for kind, names in reg.conflicts().items():
        for name, owners in names.items():
            print(f"conflict: {kind} {name!r} is registered by {' and '.join(owners)} "
                  f"(disable one with {DISABLE_ENV}=<plugin>)")
    return 0

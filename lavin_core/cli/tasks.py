"""``lavin tasks``: the tasks every installed plugin provides."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list the tasks and prompt samplers of all installed plugins")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import registry
    from lavin_core.cli.task_options import describe_options
    from lavin_core.evaluation.table import format_table

    reg = registry.default_registry()
    conflicts = reg.conflicts()
    rows = []
    for name in reg.list_tasks():
        if name in conflicts["task"]:
            rows.append([name, "-", f"CONFLICT: registered by {' and '.join(conflicts['task'][name])}", "-", "-", "-"])
            continue
        entry = reg.task_entry(name)
        metrics = ", ".join(getattr(entry.factory, "metrics", ()))
        description = getattr(entry.factory, "description", "")
        split = getattr(entry.factory, "split", None) or "-"
        rows.append([name, metrics, description, describe_options(entry.options(), entry.factory) or "-", split, entry.plugin])
    headers = ["task", "metrics (main first)", "description", "options (--task-option KEY=VALUE)", "split", "plugin"]
    print(format_table(headers, rows) if rows else "no tasks registered")
    samplers = reg.list_prompt_samplers()
    print()
    print(f"prompt samplers: {', '.join(samplers) if samplers else 'none'}")
    broken = [record.name for record in reg.plugins() if record.status == "error"]
    if broken:
        print(f"\nbroken plugins (see `lavin plugins`): {', '.join(broken)}")
    return 0

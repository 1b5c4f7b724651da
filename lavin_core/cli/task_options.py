"""``--task-option``: task options from the command line, shared by ``run``, ``bench``, ``demo`` and ``cache``.

    --task-option style=drawn                 # every task that takes ``style``
    --task-option depth:max_depth=12          # one task
    --task-option map_blur:source=skimage

A value is read as JSON when it parses (``12``, ``true``, ``[1, 2]``), else as text.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Sequence
from typing import Any


def add_task_option_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task-option", action="append", default=[], metavar="[TASK:]KEY=VALUE", dest="task_option",
        help="a task option (see `lavin tasks`): KEY=VALUE for every task that takes KEY, TASK:KEY=VALUE for "
             "one task; VALUE is read as JSON if it parses, else as text; repeatable")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def split_option(text: str) -> tuple[str | None, str, Any]:
    """``"depth:max_depth=12"`` -> ``("depth", "max_depth", 12)``; ``"style=drawn"`` -> ``(None, "style", "drawn")``."""
    head, sep, value = text.partition("=")
    task, colon, key = head.rpartition(":")
    if not sep or not key or (colon and not task):
        raise ValueError(f"--task-option takes KEY=VALUE or TASK:KEY=VALUE, got {text!r}")
    return (task or None), key, parse_value(value)


def task_options(values: Sequence[str], tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per task of ``tasks``, the options ``values`` give it; an option no task takes is an error."""
    import registry

    accepted = {name: registry.default_registry().task_entry(name).options() for name in tasks}
    options: dict[str, dict[str, Any]] = {name: {} for name in tasks}
    for text in values:
        task, key, value = split_option(text)
        targets = [task] if task is not None else [n for n in tasks if key in accepted[n]]
        if task is not None and task not in accepted:
            raise ValueError(f"--task-option {text!r} names task {task!r}, which is not among {', '.join(tasks)}")
        if task is not None and key not in accepted[task]:
            raise ValueError(f"task {task!r} has no option {key!r}; it takes {', '.join(accepted[task]) or 'none'}")
        if not targets:
            raise ValueError(f"no task among {', '.join(tasks)} takes option {key!r} (from --task-option {text!r})")
        for name in targets:
            options[name][key] = value
    return options


def describe_options(defaults: dict[str, Any], factory: Any = None) -> str:
    """``{"size": 64, "path": <required>}`` -> ``"size=64, path (required)"`` for ``lavin tasks``.

    ``style`` (renderings drawn per context) shows the task's default first, then its other styles.
    """
    parts = []
    for key, value in defaults.items():
        if value is inspect.Parameter.empty:
            parts.append(f"{key} (required)")
        elif key == "style" and value is None and hasattr(factory, "styles"):
            first = factory.default_style
            parts.append("style=" + "|".join([first, *(s for s in factory.styles if s != first)]))
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts)

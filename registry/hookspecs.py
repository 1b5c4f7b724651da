"""The hooks a LaVin plugin implements.

A plugin is any importable object (usually a module) with functions marked ``@hookimpl``::

    from registry import hookimpl

    @hookimpl
    def lavin_register_tasks(register):
        register(MyTask)              # a Task subclass, or any callable returning a Task

    @hookimpl
    def lavin_register_prompt_samplers(register):
        register(MySampler, name="my-sampler")

and is announced in its ``pyproject.toml``::

    [project.entry-points.lavin]
    my-plugin = "my_package"

``register(factory, name=None)`` records a factory under ``name`` (default: ``factory.name``);
``registry.get_task(name, **options)`` calls ``factory(**options)``.
"""

from __future__ import annotations

import pluggy

PROJECT = "lavin"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lavin_register_tasks(register):
    """Call ``register(factory, name=None)`` once for each task the plugin provides."""


@hookspec
def lavin_register_prompt_samplers(register):
    """Call ``register(factory, name=None)`` once for each prompt sampler the plugin provides."""

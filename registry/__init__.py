"""The LaVin registry: tasks and prompt samplers by name, from every installed plugin.

    >>> import registry
    >>> registry.list_tasks()
    >>> task = registry.get_task("depth")

Plugins are discovered from the entry-point group ``lavin``; ``register_plugin`` adds one
in-process (tests, notebooks). See ``registry.hookspecs`` for how to write one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.hookspecs import hookimpl
from registry.manager import DuplicateNameError, Entry, PluginError, PluginRecord, Registry

if TYPE_CHECKING:
    from lavin_core.interfaces import PromptSampler, Task

_default: Registry | None = None


def default_registry() -> Registry:
    """The shared registry behind the module-level functions (created on first use)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reload() -> Registry:
    """Forget every plugin and read the entry points again (after installing a plugin in a session)."""
    global _default
    _default = Registry()
    return _default


def get_task(name: str, **options: Any) -> Task:
    return default_registry().get_task(name, **options)


def list_tasks() -> list[str]:
    return default_registry().list_tasks()


def get_prompt_sampler(name: str, **options: Any) -> PromptSampler:
    return default_registry().get_prompt_sampler(name, **options)


def list_prompt_samplers() -> list[str]:
    return default_registry().list_prompt_samplers()


def register_plugin(plugin: object, name: str | None = None) -> str:
    return default_registry().register_plugin(plugin, name)


def unregister_plugin(name: str) -> None:
    default_registry().unregister_plugin(name)


def plugins() -> list[PluginRecord]:
    return default_registry().plugins()


__all__ = [
    "DuplicateNameError",
    "Entry",
    "PluginError",
    "PluginRecord",
    "Registry",
    "default_registry",
    "get_prompt_sampler",
    "get_task",
    "hookimpl",
    "list_prompt_samplers",
    "list_tasks",
    "plugins",
    "register_plugin",
    "reload",
    "unregister_plugin",
]

"""Plugin discovery and the name tables behind ``registry.get_task`` and friends.

Plugins come from the entry-point group ``lavin`` (the built-in ``lavin_plugins`` included) and
from ``register_plugin`` calls in-process. A plugin that fails to import, or raises in a hook,
is recorded with its error and left out; the others still load. A name claimed by two plugins is
not guessed between: asking for it raises ``DuplicateNameError`` naming both, and
``LAVIN_DISABLE_PLUGINS=name1,name2`` (entry-point names) turns plugins off.
"""

from __future__ import annotations

import inspect

import os
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from registry import hookspecs
from registry.errors import LavinError, UnknownNameError

if TYPE_CHECKING:
    from lavin_core.interfaces import PromptSampler, Task

ENTRY_POINT_GROUP = "lavin"
DISABLE_ENV = "LAVIN_DISABLE_PLUGINS"

#: Hook name -> the kind of object it registers, as messages name it.
KINDS: dict[str, str] = {
    "lavin_register_tasks": "task",
    "lavin_register_prompt_samplers": "prompt sampler",
}

#: Kind -> the interface every instance of that kind must implement. The classes live in
#: ``lavin_core.interfaces``, which declares them here when it is imported (the registry imports
#: nothing of LaVin, so the dependency points one way: LaVin -> registry).
INTERFACES: dict[str, type] = {}


def declare_interface(kind: str, interface: type) -> None:
    """Make ``get_task`` / ``get_prompt_sampler`` refuse objects that are not ``interface`` instances."""
    if kind not in KINDS.values():
        raise ValueError(f"unknown kind {kind!r}; the registry knows {', '.join(KINDS.values())}")
    INTERFACES[kind] = interface


class DuplicateNameError(LavinError):
    """Two plugins registered the same name."""


class PluginError(LavinError):
    """A plugin's factory failed or returned the wrong kind of object."""


@attrs.frozen
class Entry:
    """One registered name: its factory and the plugin that registered it."""

    name: str
    factory: Callable[..., Any]
    plugin: str

    def options(self) -> dict[str, Any]:
        """The factory's options (the keywords ``get_task(name, **options)`` passes) and their
        defaults, read from its signature; ``inspect.Parameter.empty`` marks a required one."""
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):  # a builtin or C callable without a signature
            return {}
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name: p.default for p in signature.parameters.values() if p.kind in kinds}


@attrs.frozen
class PluginRecord:
    """What ``lavin plugins`` shows about one plugin."""

    name: str
    source: str
    status: str  # "ok", "disabled" or "error"
    error: str = ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _disabled_names() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


class Registry:
    """Plugins and the tasks and prompt samplers they register.

    ``Registry(entry_points=False)`` gives an empty registry for tests; the module-level
    functions of ``registry`` use one shared instance that reads the entry points on first use.
    """

    def __init__(self, *, entry_points: bool = True):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._entry_points = entry_points
        self._discovered = False
        self._records: dict[str, PluginRecord] = {}
        self._tables: dict[str, tuple[dict[str, Entry], dict[str, list[str]]]] | None = None

    # -- plugins -------------------------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (module, class or instance with hookimpls) in-process; returns its name."""
        self._discover()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self._records:
            raise DuplicateNameError(f"a plugin named {name!r} is already registered; pass another name=")
        self._pm.register(plugin, name=name)
        self._records[name] = PluginRecord(name=name, source="in-process", status="ok")
        self._tables = None
        return name

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin registered under ``name`` (in-process or from an entry point)."""
        self._discover()
        if name not in self._records:
            raise UnknownNameError("plugin", name, self._records)
        if self._pm.get_plugin(name) is not None:
            self._pm.unregister(name=name)
        del self._records[name]
        self._tables = None

    def plugins(self) -> list[PluginRecord]:
        """Every plugin seen, loaded or not, in discovery order."""
        self._build()
        return list(self._records.values())

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if not self._entry_points:
            return
        disabled = _disabled_names()
        seen: set[str] = set()
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(entry_point.name)
            dist = entry_point.dist
            source = f"{dist.name} {dist.version}" if dist is not None else entry_point.value
            if entry_point.name in disabled:
                status, error = "disabled", f"disabled by {DISABLE_ENV}"
            else:
                try:
                    self._pm.register(entry_point.load(), name=entry_point.name)
                    status, error = "ok", ""
                except Exception as exc:  # a broken plugin must not break the others
                    status, error = "error", _describe(exc)
            self._records[entry_point.name] = PluginRecord(entry_point.name, source, status, error)

    # -- name tables ---------------------------------------------------------------------------

    def _build(self) -> dict[str, tuple[dict[str, Entry], dict[str, list[str]]]]:
        self._discover()
        if self._tables is not None:
            return self._tables
        tables = {}
        for hook_name in KINDS:
            entries: dict[str, Entry] = {}
            conflicts: dict[str, list[str]] = {}
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                collected = self._call_hook(impl)
                for entry in collected:
                    if entry.name in conflicts:
                        conflicts[entry.name].append(entry.plugin)
                    elif entry.name in entries:
                        conflicts[entry.name] = [entries.pop(entry.name).plugin, entry.plugin]
                    else:
                        entries[entry.name] = entry
            tables[hook_name] = (entries, conflicts)
        self._tables = tables
        return tables

    def _call_hook(self, impl: pluggy.HookImpl) -> list[Entry]:
        """Run one plugin's hook in isolation; on error record it and keep none of its names."""
        collected: list[Entry] = []

        def register(factory: Callable[..., Any], name: str | None = None) -> None:
            name = name if name is not None else getattr(factory, "name", None)
            if not isinstance(name, str) or not name:
                raise ValueError(f"register({factory!r}) needs a name: pass name= or give the factory a .name")
            if not callable(factory):
                raise TypeError(f"register() needs a callable factory for {name!r}, got {factory!r}")
            collected.append(Entry(name=name, factory=factory, plugin=impl.plugin_name))

        try:
            impl.function(register=register)
        except Exception as exc:
            record = self._records.get(impl.plugin_name)
            source = record.source if record else "in-process"
            self._records[impl.plugin_name] = PluginRecord(
                impl.plugin_name, source, "error", f"in {impl.function.__name__}: {_describe(exc)}"
            )
            return []
        return collected

    def _entry(self, hook_name: str, name: str) -> Entry:
        kind = KINDS[hook_name]
        entries, conflicts = self._build()[hook_name]
        if name in conflicts:
            owners = " and ".join(repr(plugin) for plugin in conflicts[name])
            raise DuplicateNameError(
                f"{kind} {name!r} is registered by both {owners}; uninstall one, or disable one with "
                f"{DISABLE_ENV}=<plugin name>"
            )
        if name not in entries:
            raise UnknownNameError(kind, name, [*entries, *conflicts])
        return entries[name]

    def _names(self, hook_name: str) -> list[str]:
        entries, conflicts = self._build()[hook_name]
        return sorted([*entries, *conflicts])

    def _create(self, hook_name: str, name: str, options: dict[str, Any]) -> Any:
        kind = KINDS[hook_name]
        entry = self._entry(hook_name, name)
        try:
            instance = entry.factory(**options)
        except TypeError as exc:
            raise PluginError(f"{kind} {name!r} (plugin {entry.plugin!r}) rejected options {options}: {exc}") from exc
        interface = INTERFACES.get(kind)
        if interface is not None and not isinstance(instance, interface):
            raise PluginError(
                f"{kind} {name!r} from plugin {entry.plugin!r} built a {type(instance).__name__}, "
                f"not a {interface.__name__}"
            )
        return instance

    # -- public lookups ------------------------------------------------------------------------

    def get_task(self, name: str, **options: Any) -> Task:
        """A new instance of the task registered as ``name``, built with ``options``."""
        return self._create("lavin_register_tasks", name, options)

    def task_entry(self, name: str) -> Entry:
        """The registration of task ``name`` (its factory and plugin), without building it."""
        return self._entry("lavin_register_tasks", name)

    def list_tasks(self) -> list[str]:
        return self._names("lavin_register_tasks")

    def get_prompt_sampler(self, name: str, **options: Any) -> PromptSampler:
        """A new instance of the prompt sampler registered as ``name``, built with ``options``."""
        return self._create("lavin_register_prompt_samplers", name, options)

    def prompt_sampler_entry(self, name: str) -> Entry:
        return self._entry("lavin_register_prompt_samplers", name)

    def list_prompt_samplers(self) -> list[str]:
        return self._names("lavin_register_prompt_samplers")

    def provided_by(self, plugin: str) -> dict[str, list[str]]:
        """For ``lavin plugins``: the names each kind of hook of ``plugin`` registered."""
        tables = self._build()
        provided = {}
        for hook_name, kind in KINDS.items():
            entries, conflicts = tables[hook_name]
            names = [n for n, e in entries.items() if e.plugin == plugin]
            names += [n for n, owners in conflicts.items() if plugin in owners]
            provided[kind] = sorted(names)
        return provided

    def conflicts(self) -> dict[str, dict[str, list[str]]]:
        """For each kind: names claimed by more than one plugin, with the plugins."""
        return {KINDS[hook]: dict(table[1]) for hook, table in self._build().items()}

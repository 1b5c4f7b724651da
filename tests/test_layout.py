"""The layered house: no import cycle between files or between the top-level packages, ``kernels/``
a leaf, and nothing below the CLI importing it. Imports inside functions count too; imports under
``if TYPE_CHECKING:`` (type hints only, never run) do not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lavin_core", "lavin_plugins", "kernels", "registry")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts as ``a.b`` when that is a module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_init(graph: dict[str, set[str]], name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def test_no_import_cycle_between_files():
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the code itself.
    def edges(name):
        return {t for t in graph[name] if not (_is_package_init(graph, t) and name.startswith(t + "."))}

    assert _cycle({name: edges(name) for name in graph}) is None


def test_no_import_cycle_between_top_level_packages():
    graph = _graph()
    top: dict[str, set[str]] = {}
    for name, targets in graph.items():
        top.setdefault(name.split(".")[0], set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != name.split(".")[0])
    assert _cycle(top) is None, top


def test_kernels_is_a_leaf():
    graph = _graph()
    outside = {(name, t) for name, targets in graph.items() if name.startswith("kernels") for t in targets
               if not t.startswith("kernels")}
    assert not outside


def test_only_the_cli_imports_the_cli():
    graph = _graph()
    # ``python -m lavin_core.train`` is a command line too: ``__main__`` modules are entry points.
    offenders = {(name, t) for name, targets in graph.items()
                 if not name.startswith("lavin_core.cli") and not name.endswith(".__main__")
                 for t in targets if t.startswith("lavin_core.cli")}
    assert not offenders


def test_one_preset_scheme_for_both_networks():
    import warnings

    from lavin_core.jdit import JDiT, JDiTConfig, get_preset, preset
    from lavin_core.stvae import STVAE, STVAEConfig
    from lavin_core.stvae import get_preset as vae_preset

    assert JDiT.from_preset("lavin-tiny", depth=1).config == get_preset("lavin-tiny", depth=1)
    assert isinstance(STVAE.from_preset("lavin-tiny").config, STVAEConfig)
    assert isinstance(get_preset("lavin-3.4b"), JDiTConfig) and vae_preset("lavin-3.4b") == STVAEConfig()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert preset("lavin-tiny") == get_preset("lavin-tiny")
        assert vae_preset("official") == vae_preset("lavin-3.4b")
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]


def test_old_module_paths_still_import_with_a_warning():
    import importlib
    import sys
    import warnings

    from lavin_core import _moved

    for old, new in _moved.MOVED.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught), old

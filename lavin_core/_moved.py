"""Old module paths of the flat layout (before 0.2), kept importable for one release with a warning.

``import lavin_core.images`` still works and returns ``lavin_core.data.images`` itself (one
module object, so monkeypatching either name patches both), after a ``DeprecationWarning`` that
names the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module -> the module it became.
MOVED = {
    "lavin_core.images": "lavin_core.data.images",
    "lavin_core.templates": "lavin_core.data.templates",
    "lavin_core.datasets": "lavin_core.data.datasets",
    "lavin_core.cache": "lavin_core.data.cache",
    "lavin_core.loader": "lavin_core.data.loader",
    "lavin_core.attention": "lavin_core.jdit.attention",
    "lavin_core.models": "lavin_core.pretrained.folders",
    "lavin_core.bench": "lavin_core.evaluation.bench",
    "lavin_core.demo": "lavin_core.evaluation.demo",
    "lavin_core.cli.table": "lavin_core.evaluation.table",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; the old path goes away in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        pass  # already executed under its new name


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, _Alias(MOVED[name]))


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

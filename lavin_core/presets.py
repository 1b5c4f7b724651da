"""Named configurations, looked up the same way for both networks.

``jdit.get_preset`` and ``stvae.get_preset`` (and ``JDiT.from_preset`` / ``STVAE.from_preset``)
share this lookup: one dict of named configs per network, the same names for one idea
(``lavin-tiny``, ..., ``lavin-3.4b`` for the authors' released size), fields overridable by
keyword, a typed error with close matches, and old names kept for a release with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from lavin_core.errors import UnknownNameError

C = TypeVar("C")


def lookup_preset(kind: str, presets: Mapping[str, C], name: str, overrides: Mapping[str, Any],
                  renamed: Mapping[str, str] | None = None) -> C:
    """``presets[name]`` with ``overrides`` applied; a name in ``renamed`` warns and gives its new name's."""
    if renamed and name in renamed:
        warnings.warn(f"{kind} {name!r} is now called {renamed[name]!r}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=3)
        name = renamed[name]
    if name not in presets:
        raise UnknownNameError(kind, name, presets)
    return attrs.evolve(presets[name], **overrides) if overrides else presets[name]

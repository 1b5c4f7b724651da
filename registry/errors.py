"""The base of every error LaVin raises on bad input, and the unknown-name error of every lookup.

They live here, at the bottom of the house, because the registry is the first place that raises
them and it imports nothing of LaVin; ``lavin_core.errors`` re-exports both (import them from
there). The ``lavin`` command prints any ``LavinError`` as one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LavinError(Exception):
    """Base class of the errors LaVin raises on bad input."""


class UnknownNameError(LavinError, LookupError):
    """A task, prompt sampler, preset or model name that nothing registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        available = ", ".join(self.known) if self.known else "none (is a plugin installed?)"
        super().__init__(f"unknown {kind} {name!r}; {hint}available: {available}")

    def __str__(self) -> str:  # LookupError would quote the message
        return self.args[0]

"""Errors meant for the person at the keyboard: each says what was wrong and what would work.

The ``lavin`` command prints any ``LavinError`` as one line and exits with status 2.
"""

from __future__ import annotations

from registry.errors import LavinError, UnknownNameError


class CheckpointError(LavinError):
    """A checkpoint that is missing, unreadable, or does not fit the model it is loaded into."""


__all__ = ["CheckpointError", "LavinError", "UnknownNameError"]

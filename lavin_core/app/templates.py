"""The template folders under ``lavin app --templates DIR`` that the page offers in a list."""

from __future__ import annotations

import re
from pathlib import Path

#: A file or frame folder of the authors' template layout (``data.templates`` reads them).
_PAIR_FILE = re.compile(r"^.+_(input|target)(\.[A-Za-z0-9]+)?$", re.IGNORECASE)


def template_folders(root: str | Path | None) -> dict[str, str]:
    """Label -> path of ``root`` itself when it holds template pairs, and of each folder directly
    inside it that does, in name order. Folders are only listed here; a folder whose pairs do not
    match is reported when it is chosen, with the reader's one-line message."""
    if root is None:
        return {}
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--templates {root}: no such folder; give a folder of template folders "
                                f"(each with NAME_input.png / NAME_target.png pairs)")
    folders = {root.name or str(root): root} if _holds_pairs(root) else {}
    folders.update({child.name: child for child in sorted(root.iterdir()) if child.is_dir() and _holds_pairs(child)})
    return {label: str(path) for label, path in folders.items()}


def _holds_pairs(folder: Path) -> bool:
    return any(_PAIR_FILE.match(entry.name) for entry in folder.iterdir())

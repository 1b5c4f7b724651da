"""Datasets of example pairs on disk or at any fsspec URL, in the official template layout.

    pairs = TemplateFolder("s3://bucket/depth_templates", size=(256, 256))
    len(pairs); pairs[0]                       # an Example: .pair (input, target pixels), .id = "NAME"

A template folder holds ``NAME_input.png`` / ``NAME_target.png`` pairs (``lavin_core.data.templates``
parses it: this module only reads through it). The task backed by such a folder is the built-in
``folder`` task (``lavin_plugins.tasks.folder.FolderTask``): ``registry.get_task("folder", path=URL)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from lavin_core.context import Example
from lavin_core.data.templates import TemplateFiles, list_template_files, read_template_pair


def _size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive (height, width) or an int, got {size!r}")
    return int(height), int(width)


class TemplateFolder:
    """The pairs of one template folder as a map-style dataset of ``Example``s, in name order.

    Images are read on access (nothing is loaded up front); ``size`` = ``(height, width)`` or an
    int resizes both images of every pair, which lets a folder of mixed sizes be batched.
    """

    def __init__(self, url: str | os.PathLike, *, size: int | tuple[int, int] | None = None):
        self.url = os.fspath(url)
        self.size = _size(size)
        self.files: list[TemplateFiles] = list_template_files(self.url)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Example:
        if not -len(self) <= index < len(self):
            raise IndexError(f"template folder {self.url} has {len(self)} pairs; index {index} is out of range")
        files = self.files[index]
        return Example(pair=read_template_pair(files, size=self.size), id=files.name)

    def __iter__(self) -> Iterator[Example]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        return f"TemplateFolder({self.url!r}, size={self.size}, pairs={len(self)})"

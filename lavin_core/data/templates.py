"""Task templates in the official layout: a folder of ``NAME_input.png`` / ``NAME_target.png`` pairs.

This module is the one place that parses that layout (the CLI's ``--prompts`` and folder-backed
datasets both go through it). ``NAME`` may contain underscores; ``.png``, ``.jpg`` and ``.jpeg``
are read, case-insensitively. Folders may be local paths or fsspec URLs.

Pairs may be clips: ``NAME_input.mp4`` / ``NAME_target.mp4`` (``.gif``, animated ``.png`` and
the other formats of ``lavin_core.data.video`` too, mixed freely), or ``NAME_input/`` /
``NAME_target/`` folders of frames.
"""

from __future__ import annotations

import os
import re

import attrs
import fsspec

from lavin_core.context import ExamplePair
from lavin_core.errors import LavinError
from lavin_core.data import video
from lavin_core.data.images import decode_side, resize, to_pixels

_EXTENSIONS = "|".join(e.lstrip(".") for e in sorted({".jpg", ".jpeg", *video.ANIMATED_EXTENSIONS, *video.FFMPEG_EXTENSIONS}))
_FILE = re.compile(rf"^(?P<name>.+)_(?P<role>input|target)\.(?:{_EXTENSIONS})$", re.IGNORECASE)
#: A frame folder: the same names without an extension.
_FOLDER = re.compile(r"^(?P<name>.+)_(?P<role>input|target)$", re.IGNORECASE)


class TemplateError(LavinError, ValueError):
    """A template folder that is missing, empty, or whose files do not pair up."""


@attrs.frozen
class TemplateFiles:
    """The two files of one template pair."""

    name: str
    input: str
    target: str


def list_template_files(url: str | os.PathLike) -> list[TemplateFiles]:
    """The pairs of the template folder ``url``, sorted by name; only names, no image is read.
    An input and its target may be of different kinds (a GIF input, a frame-folder target).

    ``TemplateError`` when the folder is missing, has no ``*_input`` / ``*_target`` images, or has
    an input without its target (or the reverse), naming the unmatched files.
    """
    url = os.fspath(url)
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        raise TemplateError(f"template folder {url} does not exist (or is not a folder)")
    found: dict[str, dict[str, str]] = {}
    for entry in fs.ls(root, detail=True):
        path = entry["name"]
        pattern = _FOLDER if entry["type"] == "directory" else _FILE
        match = pattern.match(path.rstrip("/").rsplit("/", 1)[-1])
        if match:
            roles = found.setdefault(match["name"], {})
            role = match["role"].lower()
            if role in roles:
                raise TemplateError(f"{url}: two {role} images for {match['name']!r}: {roles[role]} and {path}")
            roles[role] = fs.unstrip_protocol(path) if "://" in url else path
    if not found:
        raise TemplateError(f"template folder {url} has no NAME_input.png / NAME_target.png pairs (or .mp4, .gif clips, or NAME_input/ frame folders)")
    unmatched = sorted(
        f"{name}_{'input' if 'input' in roles else 'target'} (no {'target' if 'input' in roles else 'input'})"
        for name, roles in found.items()
        if len(roles) != 2
    )
    if unmatched:
        raise TemplateError(f"{url}: unmatched template files: {', '.join(unmatched)}; every NAME_input needs a NAME_target")
    return [TemplateFiles(name, roles["input"], roles["target"]) for name, roles in sorted(found.items())]


def read_template_pair(files: TemplateFiles, *, size: tuple[int, int] | None = None) -> ExamplePair:
    """The pair in ``files`` as pixels, both resized to ``size`` = (height, width) if given (and
    then decoded no larger than ``images.decode_side`` of it, so a huge file is scaled down first)."""
    max_side = decode_side(max(size)) if size is not None else None
    source, target = (to_pixels(path, what=path, max_side=max_side) for path in (files.input, files.target))
    if size is not None:
        source, target = resize(source, size), resize(target, size)
    elif source.shape[2:] != target.shape[2:]:
        raise TemplateError(
            f"template {files.name!r}: input is {source.shape[-1]}x{source.shape[-2]} but target is "
            f"{target.shape[-1]}x{target.shape[-2]} (WxH); give them one size or pass a size to resize to"
        )
    return ExamplePair(input=source, target=target)


def read_template_folder(
    url: str | os.PathLike, *, size: tuple[int, int] | None = None, limit: int | None = None
) -> list[ExamplePair]:
    """The example pairs of a template folder, in name order; the first ``limit`` if given.

    ``size`` = (height, width) resizes every image (as the authors' inference does); without it
    each input and its target must share one size.
    """
    files = list_template_files(url)
    return [read_template_pair(f, size=size) for f in files[:limit]]

"""The user's files as pixels: uploaded example pairs (the template layout) and the query.

Uploaded pairs go through the same reader as ``lavin run --prompts`` (``data.templates``), so a
page user gets the CLI's one-line messages (unmatched names, unreadable files). The web server
keeps each upload under a temporary path of its own; messages name the user's file names instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

from torch import Tensor

from lavin_core.context import ExamplePair
from lavin_core.data.images import ImageError, to_pixels
from lavin_core.data.templates import TemplateError, list_template_files, read_template_pair
from lavin_core.errors import LavinError

#: What a user's folder of uploads is called in messages.
UPLOADS = "(your uploads)"


def user_message(error: Exception, paths: Sequence[str] = (), folders: Sequence[str] = ()) -> str:
    """``error`` as one line, each temporary ``paths`` entry shown by its file name and each of
    ``folders`` as ``UPLOADS``."""
    message = " ".join(str(error).split())
    for path in sorted(paths, key=len, reverse=True):  # longest first: one path may prefix another
        message = message.replace(path, os.path.basename(path))
    for folder in folders:
        message = message.replace(folder.rstrip("/") + "/", "").replace(folder, UPLOADS)
    return message


def check_not_empty(path: str) -> None:
    """``ImageError`` for a 0-byte file (an interrupted upload), naming it."""
    if os.path.getsize(path) == 0:
        raise ImageError(f"{os.path.basename(path)} is empty (0 bytes); upload the image again")


def read_query(path: str | None) -> Tensor:
    """The query image at ``path`` as pixels ``(3, 1, H, W)``; one-line errors name its file name."""
    if not path:
        raise ImageError("no query image: upload one, or pick a generated scene or a sample photo")
    try:
        check_not_empty(path)
        return to_pixels(path, what=os.path.basename(path))
    except LavinError as err:
        raise ImageError(user_message(err, [path])) from None


def read_uploaded_pairs(paths: Sequence[str], *, size: tuple[int, int], limit: int) -> list[ExamplePair]:
    """The pairs among uploaded files named ``NAME_input.png`` / ``NAME_target.png``, in name order,
    resized to ``size`` = (height, width). More than ``limit`` pairs, unmatched names, two uploads
    of one name and unreadable or empty files are one-line ``LavinError``s naming the files."""
    if not paths:
        raise TemplateError("no example pairs uploaded: add files named NAME_input.png and NAME_target.png "
                            "(1 or more pairs), or take the pairs from a task's examples")
    names = [os.path.basename(p) for p in paths]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TemplateError(f"two uploads are named {', '.join(twice)}; give each file its own name")
    folder = tempfile.mkdtemp(prefix="lavin-pairs-")
    try:
        # One folder of links (or copies) so that the template reader sees the user's names side by side.
        for path, name in zip(paths, names):
            check_not_empty(path)
            _link_or_copy(path, os.path.join(folder, name))
        try:
            files = list_template_files(folder)
            if len(files) > limit:
                raise TemplateError(f"{len(files)} example pairs uploaded; at most {limit} go into a context, "
                                    f"remove {len(files) - limit}")
            return [read_template_pair(f, size=size) for f in files]
        except LavinError as err:
            raise TemplateError(user_message(err, [os.path.join(folder, n) for n in names], [folder])) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)

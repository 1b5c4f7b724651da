"""Queries a user can pick instead of uploading one, and the tasks the page offers.

- ``generated_query``: a fresh scene from a task's own generator, with its true answer, so the
  page can score the prediction. Scenes come from seeds ``QUERY_SEED + k``, far from the small
  seeds the example pairs are drawn with (and from training's 63-bit mixed seeds).
- ``sample_photos``: scikit-image's bundled colour photos as PNG files, when it is installed.
- ``image_tasks``: the registered tasks the page offers (the page takes images, not clips).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from lavin_core.app.request import GroundTruth
from lavin_core.data.images import to_uint8
from lavin_core.errors import LavinError

#: Seeds of generated queries start here (see the module docstring).
QUERY_SEED = 1_000_000
#: scikit-image's bundled colour photos offered as queries (no download needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def task_instance(task):
    """The one instance of a task drawn per context that the page uses (a fixed task with one
    mapping is itself): its example pairs and its generated queries then share the hidden
    parameters, so a generated query's metrics are right."""
    from lavin_core.seeds import context_seed

    return task.instance(context_seed(QUERY_SEED, 0))


def generated_query(task_name: str, index: int, *, size: int | tuple[int, int]) -> tuple[np.ndarray, GroundTruth]:
    """Scene ``index`` of ``task_name``'s generator at ``size``: the query image ``(H, W, 3)`` uint8
    and its ``GroundTruth``."""
    import registry

    task = task_instance(registry.get_task(task_name, size=size))
    example = next(iter(task.examples(1, seed=QUERY_SEED + index)), None)
    if example is None:
        raise LavinError(f"task {task_name!r} generated no example to use as a query; upload a query")
    if example.pair.input.shape[1] != 1:
        raise LavinError(f"task {task_name!r} makes clips; this page takes images only")
    image = to_uint8(example.pair.input)[0]
    return image, GroundTruth(task=task_name, image=image, answer=example.answer, target=example.pair.target)


def photos_available() -> bool:
    return importlib.util.find_spec("skimage") is not None


def sample_photos(folder: str | os.PathLike) -> list[str]:
    """scikit-image's colour sample photos written once as PNGs into ``folder``; their paths, or
    none when scikit-image is not installed."""
    if not photos_available():
        return []
    import skimage.data
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        path = folder / f"{name}.png"
        if not path.is_file():
            array = getattr(skimage.data, name)()
            if array.ndim != 3:
                continue
            partial = path.with_suffix(".png.partial")
            Image.fromarray(np.asarray(array[..., :3], np.uint8)).save(partial, format="PNG")
            os.replace(partial, path)  # atomic: a second server never reads half a file
        paths.append(str(path))
    return paths


def image_tasks(size: int, first: tuple[str, ...] = ()) -> list[str]:
    """The registered tasks that build at ``size`` and draw images (not clips): ``first`` (e.g. the
    tasks the model was trained on) in their order, then the others by name."""
    import registry
    from lavin_core.evaluation.cases import buildable_tasks

    names = []
    for name in buildable_tasks(size)[0]:
        example = next(iter(task_instance(registry.get_task(name, size=size)).examples(1, seed=QUERY_SEED)), None)
        if example is not None and example.pair.input.shape[1] == 1 and example.pair.target.shape[1] == 1:
            names.append(name)
    return [n for n in first if n in names] + sorted(n for n in names if n not in first)

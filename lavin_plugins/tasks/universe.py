"""The training task universe and its held-out split, declared in code.

- ``TRAINING_UNIVERSE``: task name -> options for training a model that reads its context: every
  built-in task, with its rendering drawn per context where it has one (``style="drawn"``), and
  every image map of the trained families (``lavin_plugins.imagemaps``) plus their compositions.
- ``HELD_OUT``: what training never sees, two kinds: whole map families (quantize, relief,
  tint: ``map_posterize``, ``map_threshold``, ``map_solarize``, ``map_emboss``,
  ``map_duotone``) and trained tasks re-rendered with colours training never draws
  (``unseen_*``: ``style="unseen"``, palettes from ``codes.UNSEEN_COLORS`` only).

Every task declares its own split (``Task.split``); ``lavin bench --split`` reads it.
"""

from __future__ import annotations

from typing import Any

from lavin_plugins.tasks.base import GeneratedTask
from lavin_plugins.tasks.depth import DepthTask
from lavin_plugins.tasks.detection import DetectionTask
from lavin_plugins.tasks.edges import EdgeDetectionTask
from lavin_plugins.tasks.maps import MAP_TASKS
from lavin_plugins.tasks.segmentation import ForegroundSegmentationTask, SemanticSegmentationTask


def unseen_variant(task: type[GeneratedTask]) -> type[GeneratedTask]:
    """``task`` registered as ``unseen_NAME``: rendered only with colours training never draws."""
    return type(f"Unseen{task.__name__}", (task,), {
        "name": f"unseen_{task.name}",
        "description": f"{task.name} drawn in colours training never uses [held out]",
        "split": "held-out",
        "styles": ("unseen",),
        "default_style": "unseen",
        "__module__": __name__,
        "__doc__": f"``{task.__name__}`` with ``style='unseen'``: a held-out re-rendering.",
    })


UNSEEN_TASKS: tuple[type[GeneratedTask], ...] = tuple(
    unseen_variant(task)
    for task in (DepthTask, SemanticSegmentationTask, ForegroundSegmentationTask, EdgeDetectionTask, DetectionTask)
)


def _training_universe() -> dict[str, dict[str, Any]]:
    from lavin_plugins.tasks import BUILTIN_TASKS

    universe: dict[str, dict[str, Any]] = {}
    for task in BUILTIN_TASKS:
        universe[task.name] = {"style": "drawn"} if "drawn" in getattr(task, "styles", ()) else {}
    for task in MAP_TASKS:
        if task.split == "trained":
            universe[task.name] = {}
    return universe


#: Task name -> options: what a model that reads its context trains on.
TRAINING_UNIVERSE: dict[str, dict[str, Any]] = _training_universe()
#: The held-out split: tasks whose whole family or rendering training never sees.
HELD_OUT: tuple[str, ...] = tuple(t.name for t in (*MAP_TASKS, *UNSEEN_TASKS) if t.split == "held-out")

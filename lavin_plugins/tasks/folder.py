"""A task backed by a template folder (``NAME_input.png`` / ``NAME_target.png``) at a path or fsspec URL.

    registry.get_task("folder", path="s3://bucket/depth_templates", like="depth", size=64)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from lavin_core.context import Example
from lavin_core.data.datasets import TemplateFolder
from lavin_core.ensemble import mean_answer
from lavin_core.interfaces import Task
from lavin_plugins import metrics
from lavin_plugins.tasks.base import from_pixels, to_pixels


class FolderTask(Task):
    """A task whose examples are the pairs of a template folder (local path or fsspec URL).

    ``examples(count, seed=s)`` walks the pairs in a seeded random order, reshuffling for every
    further pass when ``count`` exceeds the folder (ids of repeats get ``~PASS``). ``like`` (a
    registered task name or a ``Task``) lends its ``render``, ``read``, ``score`` and metrics, and
    the answer of each example is ``like.read(target)``; without it answers are target images
    ``(T, H, W, 3)`` in [0, 1].
    """

    name: ClassVar[str] = "folder"
    description: ClassVar[str] = "pairs from a template folder (NAME_input.png / NAME_target.png) at a path or URL"
    metrics: ClassVar[tuple[str, ...]] = ("psnr", "ssim")
    higher_is_better: ClassVar[dict[str, bool]] = {"psnr": True, "ssim": True}

    def __init__(
        self,
        *,
        path: str | os.PathLike,
        like: str | Task | None = None,
        size: int | tuple[int, int] | None = None,
        name: str | None = None,
    ):
        self.pairs = TemplateFolder(path, size=size)
        if isinstance(like, str):
            import registry

            like = registry.get_task(like, **({"size": self.pairs.size} if self.pairs.size else {}))
        if like is not None and not isinstance(like, Task):
            raise TypeError(f"like must be a task name or a Task, got {type(like).__name__}")
        self.like = like
        self.name = name or os.path.basename(self.pairs.url.rstrip("/")) or "folder"
        if like is not None:
            self.metrics, self.higher_is_better = like.metrics, like.higher_is_better

    def example(self, index: int, *, seed: int = 0) -> Example:
        """The ``index``-th item of ``examples(count, seed=seed)`` for any ``count > index``."""
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        size = len(self.pairs)
        epoch, position = divmod(index, size)
        order = np.random.default_rng([seed, epoch]).permutation(size)
        found = self.pairs[int(order[position])]
        answer = self.read(found.pair.target)
        suffix = f"~{epoch}" if epoch else ""
        return Example(pair=found.pair, answer=answer, id=f"{self.name}/{found.id}{suffix}")

    def examples(self, count: int, *, seed: int = 0) -> Iterator[Example]:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        for index in range(count):
            yield self.example(index, seed=seed)

    def render(self, answer: Any) -> Tensor:
        return self.like.render(answer) if self.like is not None else to_pixels(answer)

    def read(self, pixels: Tensor) -> Any:
        return self.like.read(pixels) if self.like is not None else from_pixels(pixels)

    def score(self, predicted: Any, truth: Any) -> dict[str, float]:
        if self.like is not None:
            return self.like.score(predicted, truth)
        return {"psnr": metrics.psnr(predicted, truth), "ssim": metrics.ssim(predicted, truth)}

    def combine(self, answers: Sequence[Any]) -> Any:
        return self.like.combine(answers) if self.like is not None else mean_answer(answers)

    def __repr__(self) -> str:
        return f"FolderTask(path={self.pairs.url!r}, like={self.like!r}, size={self.pairs.size}, name={self.name!r})"

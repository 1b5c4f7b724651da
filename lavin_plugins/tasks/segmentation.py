"""Semantic segmentation (a flat colour per class) and foreground segmentation (white on black)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_plugins import metrics
from lavin_plugins.scenes import CLASSES, random_scene, render
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels
from lavin_plugins.tasks.codes import CODE_COLORS, nearest_code

#: The colour of each class of ``CLASSES`` in a semantic target.
CLASS_COLORS = CODE_COLORS[: len(CLASSES)]


class SemanticSegmentationTask(GeneratedTask):
    """Answer: class labels ``(H, W)`` int64, indices into ``CLASSES`` (ground, wall, sphere, box, cylinder)."""

    name: ClassVar[str] = "semantic_segmentation"
    description: ClassVar[str] = f"label every pixel as one of {', '.join(CLASSES)}; one flat colour per class"
    metrics: ClassVar[tuple[str, ...]] = ("miou", "pixel_accuracy")
    higher_is_better: ClassVar[dict[str, bool]] = {"miou": True, "pixel_accuracy": True}
    classes: ClassVar[tuple[str, ...]] = CLASSES

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, view.semantic

    def render(self, answer: np.ndarray) -> Tensor:
        labels = np.asarray(answer)
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise ValueError(f"labels must lie in [0, {len(CLASSES) - 1}], got [{labels.min()}, {labels.max()}]")
        return to_pixels(CLASS_COLORS[labels])

    def read(self, pixels: Tensor) -> np.ndarray:
        return nearest_code(single_frame(pixels), CLASS_COLORS)[0]

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"miou": metrics.mean_iou(predicted, truth), "pixel_accuracy": metrics.pixel_accuracy(predicted, truth)}


class ForegroundSegmentationTask(GeneratedTask):
    """Answer: a boolean mask ``(H, W)``, True on the objects standing on the ground."""

    name: ClassVar[str] = "foreground_segmentation"
    description: ClassVar[str] = "separate the objects from the ground and wall: white mask on black"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "pixel_accuracy")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "pixel_accuracy": True}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng, num_shapes=(1, 4)), self.height, self.width)
        return view.rgb, view.foreground

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(np.repeat(np.asarray(answer, np.float32)[..., None], 3, axis=-1))

    def read(self, pixels: Tensor) -> np.ndarray:
        return single_frame(pixels).mean(-1) > 0.5

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"iou": metrics.iou(predicted, truth), "pixel_accuracy": metrics.pixel_accuracy(predicted, truth)}

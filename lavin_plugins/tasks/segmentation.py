"""Semantic segmentation (a flat colour per class) and foreground segmentation (white on black)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_plugins import metrics
from lavin_plugins.scenes import CLASSES, random_scene, render
from lavin_plugins.tasks.base import STYLES, GeneratedTask, single_frame, to_pixels
from lavin_plugins.tasks.codes import BACKGROUND, CODE_COLORS, TRAINING_COLORS, UNSEEN_COLORS, distinct_colors, nearest_code, palette_tuple

#: The colour of each class of ``CLASSES`` in a semantic target.
CLASS_COLORS = CODE_COLORS[: len(CLASSES)]


class SemanticSegmentationTask(GeneratedTask):
    """Answer: class labels ``(H, W)`` int64, indices into ``CLASSES`` (ground, wall, sphere, box, cylinder).

    Rendering drawn per context: the class palette (``style="drawn"``: 5 of ``TRAINING_COLORS``
    in a random order; ``"unseen"``: 5 of ``UNSEEN_COLORS``).
    """

    name: ClassVar[str] = "semantic_segmentation"
    description: ClassVar[str] = f"label every pixel as one of {', '.join(CLASSES)}; one flat colour per class"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("miou", "pixel_accuracy")
    higher_is_better: ClassVar[dict[str, bool]] = {"miou": True, "pixel_accuracy": True}
    classes: ClassVar[tuple[str, ...]] = CLASSES
    styles: ClassVar[tuple[str, ...]] = STYLES

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None):
        super().__init__(size=size, style=style)
        self.palette = palette_tuple(CLASS_COLORS)

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        colors = UNSEEN_COLORS if pool == "unseen" else TRAINING_COLORS
        return {"palette": palette_tuple(distinct_colors(rng, len(CLASSES), colors))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, view.semantic

    def render(self, answer: np.ndarray) -> Tensor:
        labels = np.asarray(answer)
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise ValueError(f"labels must lie in [0, {len(CLASSES) - 1}], got [{labels.min()}, {labels.max()}]")
        return to_pixels(np.array(self.palette, np.float32)[labels])

    def read(self, pixels: Tensor) -> np.ndarray:
        return nearest_code(single_frame(pixels), np.array(self.palette, np.float32))[0]

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"miou": metrics.mean_iou(predicted, truth), "pixel_accuracy": metrics.pixel_accuracy(predicted, truth)}


class ForegroundSegmentationTask(GeneratedTask):
    """Answer: a boolean mask ``(H, W)``, True on the objects standing on the ground.

    Rendering drawn per context: the background and mask colours (``style="drawn"``: two of black
    and ``TRAINING_COLORS``; ``"unseen"``: two of ``UNSEEN_COLORS``).
    """

    name: ClassVar[str] = "foreground_segmentation"
    description: ClassVar[str] = "separate the objects from the ground and wall: white mask on black"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "pixel_accuracy")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "pixel_accuracy": True}
    styles: ClassVar[tuple[str, ...]] = STYLES

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None):
        super().__init__(size=size, style=style)
        self.colors = palette_tuple([BACKGROUND, np.ones(3)])  # (background, mask)

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"colors": palette_tuple(distinct_colors(rng, 2, two_tone_pool(pool)))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng, num_shapes=(1, 4)), self.height, self.width)
        return view.rgb, view.foreground

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(draw_mask(answer, self.colors))

    def read(self, pixels: Tensor) -> np.ndarray:
        return read_mask(pixels, self.colors)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"iou": metrics.iou(predicted, truth), "pixel_accuracy": metrics.pixel_accuracy(predicted, truth)}


def two_tone_pool(pool: str) -> np.ndarray:
    """Colours a two-tone answer (mask, edges, box outline) draws its background and ink from."""
    return UNSEEN_COLORS if pool == "unseen" else np.concatenate([BACKGROUND[None], TRAINING_COLORS])


def draw_mask(mask: np.ndarray, colors) -> np.ndarray:
    """A boolean ``(H, W)`` mask as an ``(H, W, 3)`` image: ``colors[1]`` where True, ``colors[0]`` elsewhere."""
    colors = np.asarray(colors, np.float32)
    return np.where(np.asarray(mask, bool)[..., None], colors[1], colors[0])


def read_mask(pixels: Tensor, colors) -> np.ndarray:
    """The mask drawn by ``draw_mask``: pixels nearer ``colors[1]`` than ``colors[0]``."""
    return nearest_code(single_frame(pixels), np.asarray(colors, np.float32))[0] == 1

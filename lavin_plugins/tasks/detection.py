"""Single-object detection: the box around the one object in the scene, drawn as an outline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_core.ensemble import median_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.scenes.draw import draw_box_outline
from lavin_plugins.tasks.base import STYLES, GeneratedTask, to_pixels
from lavin_plugins.tasks.codes import BACKGROUND, distinct_colors, palette_tuple
from lavin_plugins.tasks.segmentation import read_mask, two_tone_pool

OUTLINE = 2  # pixels


def min_box(outline: int) -> int:
    """The smallest box side drawn with an ``outline`` pixels wide: a smaller box would be a filled blob."""
    return 2 * outline + 2


class DetectionTask(GeneratedTask):
    """Answer: a box ``(x0, y0, x1, y1)`` float32 in pixels, x1 and y1 exclusive.

    Rendering drawn per context: background and outline colours (as foreground segmentation's)
    and the outline width, 1 to 3 pixels.
    """

    name: ClassVar[str] = "detection"
    description: ClassVar[str] = "box the single object in the scene: a white rectangle outline on black"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "hit@0.5")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "hit@0.5": True}
    styles: ClassVar[tuple[str, ...]] = STYLES

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None):
        super().__init__(size=size, style=style)
        self.colors = palette_tuple([BACKGROUND, np.ones(3)])  # (background, outline)
        self.outline = OUTLINE

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"colors": palette_tuple(distinct_colors(rng, 2, two_tone_pool(pool))),
                "outline": int(rng.integers(1, 4))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(100):
            view = render(random_scene(rng, num_shapes=1), self.height, self.width)
            box = view.boxes[0]
            if np.all(np.isfinite(box)) and min(box[2] - box[0], box[3] - box[1]) >= min_box(self.outline):
                return view.rgb, box
        raise ValueError(f"no visible object after 100 scenes at {self.height}x{self.width}; use a larger size")

    def render(self, answer: np.ndarray) -> Tensor:
        """The box's outline on the background; no box (NaN, what ``read`` returns when it finds
        none, e.g. an ensemble where no sample drew one) is the bare background."""
        background, ink = np.array(self.colors, np.float32)
        canvas = np.broadcast_to(background, (self.height, self.width, 3)).copy()
        if not np.all(np.isfinite(answer)):
            return to_pixels(canvas)
        return to_pixels(draw_box_outline(canvas, answer, self.outline, ink))

    def read(self, pixels: Tensor) -> np.ndarray:
        mask = read_mask(pixels, self.colors)
        # a column (row) inside the box crosses the top and bottom (left and right) borders:
        # requiring two lit pixels ignores isolated specks
        cols = np.nonzero(mask.sum(0) >= 2)[0]
        rows = np.nonzero(mask.sum(1) >= 2)[0]
        if not len(cols) or not len(rows):
            return np.full(4, np.nan, np.float32)
        return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        value = metrics.box_iou(predicted, truth)
        return {"iou": value, "hit@0.5": float(value >= 0.5)}

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The median of each box coordinate over the samples that drew a box."""
        return median_answer(answers)

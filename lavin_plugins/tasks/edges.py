"""Edge detection: object outlines and creases of a rendered scene, white on black."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks.base import STYLES, GeneratedTask, to_pixels
from lavin_plugins.tasks.codes import BACKGROUND, distinct_colors, palette_tuple
from lavin_plugins.tasks.segmentation import draw_mask, read_mask, two_tone_pool


class EdgeDetectionTask(GeneratedTask):
    """Answer: a boolean edge map ``(H, W)``. F1 matches edge pixels within ``tolerance`` pixels.

    Rendering drawn per context: background and line colours (as foreground segmentation's) and
    the line thickness, 1 or 3 pixels (the answer is then the thickened edge map).
    """

    name: ClassVar[str] = "edges"
    description: ClassVar[str] = "object boundaries and creases, one pixel wide, white on black"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("f1", "precision", "recall")
    higher_is_better: ClassVar[dict[str, bool]] = {"f1": True, "precision": True, "recall": True}

    styles: ClassVar[tuple[str, ...]] = STYLES

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None, tolerance: int = 1):
        super().__init__(size=size, style=style)
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
        self.tolerance = tolerance
        self.colors = palette_tuple([BACKGROUND, np.ones(3)])  # (background, line)
        self.thickness = 1

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"colors": palette_tuple(distinct_colors(rng, 2, two_tone_pool(pool))),
                "thickness": int(rng.choice([1, 3]))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, metrics.dilate(view.edges, (self.thickness - 1) // 2)

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(draw_mask(answer, self.colors))

    def read(self, pixels: Tensor) -> np.ndarray:
        return read_mask(pixels, self.colors)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        f1, precision, recall = metrics.edge_scores(predicted, truth, self.tolerance)
        return {"f1": f1, "precision": precision, "recall": recall}

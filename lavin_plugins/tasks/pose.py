"""Pose estimation: the 14 keypoints of a stick figure, drawn as coloured discs joined by grey limbs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_core.ensemble import median_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import KEYPOINTS, LIMBS, draw_figure, random_figure, random_scene, render
from lavin_plugins.scenes.draw import draw_disc, draw_segment
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels
from lavin_plugins.tasks.codes import BACKGROUND, CODE_COLORS, LINE_GREY, distinct_colors, nearest_code, palette_tuple

KEYPOINT_COLORS = CODE_COLORS[: len(KEYPOINTS)]
#: A pixel further than this from every code colour is ignored when reading keypoints.
MAX_COLOR_DISTANCE = 0.35


class PoseTask(GeneratedTask):
    """Answer: keypoints ``(14, 2)`` float ``(x, y)`` pixels in ``KEYPOINTS`` order; NaN rows when not found.

    PCK counts a keypoint as correct within ``pck_alpha`` times the larger side of the true figure's box.
    Rendering drawn per context (``style="drawn"``): which of the 25 code colours marks each
    keypoint, and the disc radius (1 or 1.5 times the default, from 64 px up).
    """

    name: ClassVar[str] = "pose"
    description: ClassVar[str] = "14 keypoints of a stick figure: coloured discs joined by grey limbs"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("pck", "mean_error_px")
    higher_is_better: ClassVar[dict[str, bool]] = {"pck": True, "mean_error_px": False}
    keypoints: ClassVar[tuple[str, ...]] = KEYPOINTS
    styles: ClassVar[tuple[str, ...]] = ("fixed", "drawn")

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None, pck_alpha: float = 0.1):
        super().__init__(size=size, style=style)
        if not 0 < pck_alpha <= 1:
            raise ValueError(f"pck_alpha must be in (0, 1], got {pck_alpha}")
        self.pck_alpha = pck_alpha
        self.radius = max(1.0, min(self.height, self.width) / 32)
        self.palette = palette_tuple(KEYPOINT_COLORS)

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"palette": palette_tuple(distinct_colors(rng, len(KEYPOINTS), CODE_COLORS)),
                # larger discs only where a figure still fits with its keypoints apart
                "radius": self.radius * float(rng.choice([1.0, 1.5] if min(self.height, self.width) >= 64 else [1.0]))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image = render(random_scene(rng), self.height, self.width).rgb.copy()
        figure = random_figure(rng, self.height, self.width, min_separation=2 * self.radius + 1)
        return draw_figure(image, figure), figure.keypoints.astype(np.float32)

    def render(self, answer: np.ndarray) -> Tensor:
        keypoints = np.asarray(answer, np.float64)
        canvas = np.zeros((self.height, self.width, 3), np.float32)
        for a, b in LIMBS:
            if np.all(np.isfinite(keypoints[[a, b]])):
                draw_segment(canvas, keypoints[a], keypoints[b], 1.0, LINE_GREY)
        for index, point in enumerate(keypoints):
            if np.all(np.isfinite(point)):
                draw_disc(canvas, point, self.radius, self.palette[index])
        return to_pixels(canvas)

    def read(self, pixels: Tensor) -> np.ndarray:
        codes = np.concatenate([np.array(self.palette, np.float32), BACKGROUND[None], LINE_GREY[None]])
        code, distance = nearest_code(single_frame(pixels), codes)
        code = np.where(distance <= MAX_COLOR_DISTANCE, code, -1)
        keypoints = np.full((len(KEYPOINTS), 2), np.nan, np.float32)
        for index in range(len(KEYPOINTS)):
            rows, cols = np.nonzero(code == index)
            if len(rows):
                keypoints[index] = (cols.mean() + 0.5, rows.mean() + 0.5)
        return keypoints

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        truth = np.asarray(truth)
        extent = np.nanmax(truth, axis=0) - np.nanmin(truth, axis=0)
        return {
            "pck": metrics.pck(predicted, truth, self.pck_alpha * float(extent.max())),
            "mean_error_px": metrics.keypoint_error(predicted, truth),
        }

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The median position of each keypoint over the samples that drew it."""
        return median_answer(answers)

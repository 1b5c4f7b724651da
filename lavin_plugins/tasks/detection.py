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
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels

OUTLINE = 2  # pixels
MIN_BOX = 2 * OUTLINE + 2  # pixels: a smaller box would be a filled blob


class DetectionTask(GeneratedTask):
    """Answer: a box ``(x0, y0, x1, y1)`` float32 in pixels, x1 and y1 exclusive."""

    name: ClassVar[str] = "detection"
    description: ClassVar[str] = "box the single object in the scene: a white rectangle outline on black"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "hit@0.5")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "hit@0.5": True}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(100):
            view = render(random_scene(rng, num_shapes=1), self.height, self.width)
            box = view.boxes[0]
            if np.all(np.isfinite(box)) and min(box[2] - box[0], box[3] - box[1]) >= MIN_BOX:
                return view.rgb, box
        raise ValueError(f"no visible object after 100 scenes at {self.height}x{self.width}; use a larger size")

    def render(self, answer: np.ndarray) -> Tensor:
        canvas = np.zeros((self.height, self.width, 3), np.float32)
        return to_pixels(draw_box_outline(canvas, answer, OUTLINE, 1.0))

    def read(self, pixels: Tensor) -> np.ndarray:
        mask = single_frame(pixels).mean(-1) > 0.5
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

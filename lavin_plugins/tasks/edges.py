"""Edge detection: object outlines and creases of a rendered scene, white on black."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels


class EdgeDetectionTask(GeneratedTask):
    """Answer: a boolean edge map ``(H, W)``. F1 matches edge pixels within ``tolerance`` pixels."""

    name: ClassVar[str] = "edges"
    description: ClassVar[str] = "object boundaries and creases, one pixel wide, white on black"
    metrics: ClassVar[tuple[str, ...]] = ("f1", "precision", "recall")
    higher_is_better: ClassVar[dict[str, bool]] = {"f1": True, "precision": True, "recall": True}

    def __init__(self, *, size: int | tuple[int, int] = 64, tolerance: int = 1):
        super().__init__(size=size)
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
        self.tolerance = tolerance

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, view.edges

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(np.repeat(np.asarray(answer, np.float32)[..., None], 3, axis=-1))

    def read(self, pixels: Tensor) -> np.ndarray:
        return single_frame(pixels).mean(-1) > 0.5

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        f1, precision, recall = metrics.edge_scores(predicted, truth, self.tolerance)
        return {"f1": f1, "precision": precision, "recall": recall}

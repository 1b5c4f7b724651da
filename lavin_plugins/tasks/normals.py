"""Surface normals: a scene image in, its camera-space normal map out (x, y, z drawn as R, G, B)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lavin_core.ensemble import unit_mean_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks.base import GeneratedTask, single_frame


def normals_of_colors(colors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` colours in [0, 1] drawn as RGB = (x, y, z) back to unit normals ``(..., 3)``."""
    vectors = np.asarray(colors) * 2 - 1
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-6)).astype(np.float32)


class NormalsTask(GeneratedTask):
    """Answer: unit normals ``(H, W, 3)`` in camera axes (x right, y up, z towards the viewer).

    Rendering drawn per context (``style="drawn"``): which axis goes to which of R, G, B, and
    the sign of each (48 maps).
    """

    name: ClassVar[str] = "normals"
    description: ClassVar[str] = "surface normals of a rendered scene, drawn as RGB = (x, y, z) in camera axes"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("mean_angle", "within_11.25")
    higher_is_better: ClassVar[dict[str, bool]] = {"mean_angle": False, "within_11.25": True}

    styles: ClassVar[tuple[str, ...]] = ("fixed", "drawn")

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None):
        super().__init__(size=size, style=style)
        self.axes, self.signs = (0, 1, 2), (1.0, 1.0, 1.0)

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"axes": tuple(int(a) for a in rng.permutation(3)),
                "signs": tuple(float(s) for s in rng.choice([-1.0, 1.0], 3))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, view.normals

    def render(self, answer: np.ndarray) -> Tensor:
        # a normal's components already lie in [-1, 1], the pixel range
        drawn = np.asarray(answer, np.float32)[..., list(self.axes)] * np.float32(self.signs)
        return torch.from_numpy(np.clip(drawn, -1, 1)).permute(2, 0, 1)[:, None].contiguous()

    def read(self, pixels: Tensor) -> np.ndarray:
        drawn = single_frame(pixels)
        colors = np.empty_like(drawn)
        # undo the drawn axis order and signs in [-1, 1], then read the canonical colours back
        colors[..., list(self.axes)] = ((drawn * 2 - 1) * np.float32(self.signs) + 1) / 2
        return normals_of_colors(colors)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            "mean_angle": metrics.mean_angular_error(predicted, truth),
            "within_11.25": metrics.fraction_within(predicted, truth, 11.25),
        }

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled normals, scaled back to unit length."""
        return unit_mean_answer(answers)

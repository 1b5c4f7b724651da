"""Monocular depth: a scene image in, its depth map out, drawn with the scalar colour code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_core.ensemble import mean_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks.base import STYLES, GeneratedTask, single_frame, to_pixels
from lavin_plugins.tasks.codes import SCALAR_PATH, UNSEEN_COLORS, decode_scalar, distinct_colors, encode_scalar, palette_tuple


class DepthTask(GeneratedTask):
    """Answer: depth ``(H, W)`` float32 in scene units, drawn linearly over ``[0, max_depth]``.

    Rendering drawn per context: the colour path (``style="drawn"``: the scalar path with its
    channels permuted and possibly reversed, 12 maps; ``"unseen"``: a two-colour ramp).
    """

    name: ClassVar[str] = "depth"
    description: ClassVar[str] = "monocular depth of a rendered scene, as a colour-coded depth map"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("abs_rel", "delta1")
    higher_is_better: ClassVar[dict[str, bool]] = {"abs_rel": False, "delta1": True}

    styles: ClassVar[tuple[str, ...]] = STYLES

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None, max_depth: float = 10.0):
        super().__init__(size=size, style=style)
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0, got {max_depth}")
        self.max_depth = float(max_depth)
        self.colormap = palette_tuple(SCALAR_PATH)

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        if pool == "unseen":
            return {"colormap": palette_tuple(distinct_colors(rng, 2, UNSEEN_COLORS))}
        path = SCALAR_PATH[:, rng.permutation(3)]
        return {"colormap": palette_tuple(path[::-1] if rng.uniform() < 0.5 else path)}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = render(random_scene(rng), self.height, self.width)
        return view.rgb, np.minimum(view.depth, self.max_depth)

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(encode_scalar(np.asarray(answer) / self.max_depth, np.array(self.colormap)))

    def read(self, pixels: Tensor) -> np.ndarray:
        return decode_scalar(single_frame(pixels), np.array(self.colormap)) * np.float32(self.max_depth)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"abs_rel": metrics.abs_rel(predicted, truth), "delta1": metrics.delta1(predicted, truth)}

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled depth maps (as Marigold ensembles its samples)."""
        return mean_answer(answers)

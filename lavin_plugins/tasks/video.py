"""Video frame prediction: the first frames of a moving scene in, the frames that follow out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_core.context import TEMPORAL_STRIDE
from lavin_core.ensemble import mean_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import random_scene, render
from lavin_plugins.tasks.base import GeneratedTask, from_pixels, to_pixels


class FramePredictionTask(GeneratedTask):
    """Input: ``frames`` frames of a scene whose objects move; answer: the next ``frames`` frames
    ``(frames, H, W, 3)`` float32 in [0, 1]. ``frames`` must be ``1 + 4k`` (5 by default)."""

    name: ClassVar[str] = "frame_prediction"
    description: ClassVar[str] = "predict the next frames of a clip of moving objects"
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("psnr", "ssim", "temporal_error")
    higher_is_better: ClassVar[dict[str, bool]] = {"psnr": True, "ssim": True, "temporal_error": False}
    #: The answer's frames follow the input's rather than matching them one to one: a long
    #: query is not cut into windows; its last ``frames`` frames are the context.
    frame_aligned: ClassVar[bool] = False

    def __init__(self, *, size: int | tuple[int, int] = 64, frames: int = 5):
        super().__init__(size=size)
        if frames < 1 or (frames - 1) % TEMPORAL_STRIDE:
            raise ValueError(f"frames must be 1 + {TEMPORAL_STRIDE}k (1, 5, 9, ...), got {frames}")
        self.frames = frames

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scene = random_scene(rng, num_shapes=(2, 4), moving=True)
        clip = np.stack([render(scene.at(t), self.height, self.width).rgb for t in range(2 * self.frames)])
        return clip[: self.frames], clip[self.frames :]

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(answer)

    def read(self, pixels: Tensor) -> np.ndarray:
        return from_pixels(pixels)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"psnr": metrics.psnr(predicted, truth), "ssim": metrics.ssim(predicted, truth),
                "temporal_error": metrics.temporal_error(predicted, truth, vector=True)}

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled clips (the MSE-optimal consensus)."""
        return mean_answer(answers)

"""Image restoration tasks: a degraded image in, the clean image out.

Each task only differs in its seeded ``degrade(image, rng)``; the clean images come from a
``photos`` source (scene renders by default, a folder, or scikit-image's sample photos). The
answer is the clean image itself, ``(H, W, 3)`` float32 in [0, 1], scored with PSNR and SSIM.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import Tensor

from lavin_core.ensemble import mean_answer
from lavin_plugins import metrics
from lavin_plugins.imagemaps import LUMA, gaussian_blur
from lavin_plugins.photos import ImageSource, image_source
from lavin_plugins.scenes.draw import draw_segment
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels

class RestorationTask(GeneratedTask):
    split: ClassVar[str | None] = "trained"
    metrics: ClassVar[tuple[str, ...]] = ("psnr", "ssim")
    higher_is_better: ClassVar[dict[str, bool]] = {"psnr": True, "ssim": True}

    def __init__(self, *, size: int | tuple[int, int] = 64, source: str | ImageSource = "scenes"):
        super().__init__(size=size)
        self.source = image_source(source)

    @abc.abstractmethod
    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The degraded ``(H, W, 3)`` image in [0, 1] made from the clean ``image``."""

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        clean = self.source.image(rng, self.height, self.width)
        return np.clip(self.degrade(clean, rng), 0, 1).astype(np.float32), clean

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(answer)

    def read(self, pixels: Tensor) -> np.ndarray:
        return single_frame(pixels)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"psnr": metrics.psnr(predicted, truth), "ssim": metrics.ssim(predicted, truth)}

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled images (the MSE-optimal consensus)."""
        return mean_answer(answers)


class ColorizationTask(RestorationTask):
    name: ClassVar[str] = "colorization"
    description: ClassVar[str] = "restore the colours of a greyscale image"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.repeat((image @ LUMA)[..., None], 3, axis=-1)


class DenoisingTask(RestorationTask):
    name: ClassVar[str] = "denoising"
    description: ClassVar[str] = "remove Gaussian noise (sigma 0.05 to 0.2 of the range)"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return image + rng.normal(0, rng.uniform(0.05, 0.2), image.shape)


class DeblurringTask(RestorationTask):
    name: ClassVar[str] = "deblurring"
    description: ClassVar[str] = "sharpen an image blurred by a Gaussian (sigma 0.8 to 2 pixels, scaled to 64 px)"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return gaussian_blur(image, rng.uniform(0.8, 2.0) * min(self.height, self.width) / 64)


class InpaintingTask(RestorationTask):
    name: ClassVar[str] = "inpainting"
    description: ClassVar[str] = "fill in 1 to 3 grey rectangles cut out of the image"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        holed = image.copy()
        for _ in range(rng.integers(1, 4)):
            h = int(rng.uniform(0.15, 0.35) * self.height)
            w = int(rng.uniform(0.15, 0.35) * self.width)
            y, x = rng.integers(0, self.height - h), rng.integers(0, self.width - w)
            holed[y : y + h, x : x + w] = 0.5
        return holed


class LowLightTask(RestorationTask):
    name: ClassVar[str] = "low_light"
    description: ClassVar[str] = "brighten an under-exposed image (gamma 1.5 to 2.5, gain 0.1 to 0.35, sensor noise)"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dark = image ** rng.uniform(1.5, 2.5) * rng.uniform(0.1, 0.35)
        return dark + rng.normal(0, 0.01, image.shape)


class DerainingTask(RestorationTask):
    name: ClassVar[str] = "deraining"
    description: ClassVar[str] = "remove bright slanted rain streaks"

    def degrade(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        streaks = np.zeros((self.height, self.width, 1), np.float32)
        angle = rng.uniform(-0.5, 0.5)  # radians from vertical, shared by all streaks of one image
        direction = np.array([np.sin(angle), np.cos(angle)])
        count = int(rng.uniform(0.02, 0.05) * self.height * self.width / 4)
        for _ in range(count):
            start = rng.uniform(0, 1, 2) * (self.width, self.height)
            length = rng.uniform(0.08, 0.2) * self.height
            draw_segment(streaks, start, start + length * direction, 1.0, rng.uniform(0.4, 0.8))
        return image + (1 - image) * streaks

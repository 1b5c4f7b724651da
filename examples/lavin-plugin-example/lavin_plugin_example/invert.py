"""The "invert" task: the target is the photographic negative of the input."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from lavin_core import Example, ExamplePair, Task


def smooth_colour_field(generator: torch.Generator, size: int) -> Tensor:
    """A random smooth RGB image ``(3, 1, size, size)`` in [-1, 1]: coarse noise, upsampled."""
    coarse = torch.rand(1, 3, 4, 4, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)[0, :, None]


class InvertTask(Task):
    name = "invert"
    description = "photographic negative of the input (example plugin)"
    metrics = ("psnr",)
    higher_is_better = {"psnr": True}

    def __init__(self, size: int = 64):
        if size <= 0 or size % 16:
            raise ValueError(f"size must be a positive multiple of 16, got {size}")
        self.size = size

    def examples(self, count: int, *, seed: int = 0) -> Iterator[Example]:
        generator = torch.Generator().manual_seed(seed)
        for index in range(count):
            image = smooth_colour_field(generator, self.size)
            yield Example(pair=ExamplePair(input=image, target=-image), answer=-image, id=f"invert-{seed}-{index}")

    def render(self, answer: Tensor) -> Tensor:
        return answer.clamp(-1, 1)

    def read(self, pixels: Tensor) -> Tensor:
        return pixels.clamp(-1, 1)

    def score(self, predicted: Tensor, truth: Tensor) -> dict[str, float]:
        # Pixels span 2 units, so PSNR = 10 log10(2^2 / MSE); capped at 100 dB for exact matches.
        mse = F.mse_loss(predicted.float(), truth.float()).item()
        return {"psnr": 100.0 if mse == 0 else min(100.0, 10 * torch.log10(torch.tensor(4.0 / mse)).item())}

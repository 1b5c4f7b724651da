"""What every built-in task shares: pixel conversion, the ``size`` option and seeded examples.

A built-in task draws example ``i`` of seed ``s`` from its own random generator
``numpy.random.default_rng([s, i])``, so ``task.example(i, seed=s)`` is the ``i``-th item of
``task.examples(count, seed=s)`` for any ``count``, and examples can be made in any order
(the latent cache and the data loader rely on that).

Renderings drawn per context: a task whose answer can be drawn in many ways (which colour map,
palette, line colour and thickness) implements ``draw(rng, pool)``, returning new values for the
attributes that decide its rendering. With ``style="fixed"`` (the default, the rendering earlier
models were trained on) ``instance(seed)`` is the task itself; with ``style="drawn"`` it is a copy
whose rendering is drawn from the training pool, and with ``style="unseen"`` from a disjoint pool
that training never draws (the held-out re-renderings).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lavin_core.context import Example, ExamplePair
from lavin_core.interfaces import Task

#: Height and width must be multiples of this (the ST-VAE downsamples 8x, the J-DiT patch is 2).
SIZE_MULTIPLE = 16


def parse_size(size: int | tuple[int, int], *, minimum: int = 32) -> tuple[int, int]:
    """``size`` as ``(height, width)``; raises ``ValueError`` unless both are multiples of 16 and >= ``minimum``."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    for value in (height, width):
        if not isinstance(value, (int, np.integer)) or value < minimum or value % SIZE_MULTIPLE:
            raise ValueError(
                f"size must be an int or (height, width) of multiples of {SIZE_MULTIPLE} that are at least "
                f"{minimum}, got {size!r}; try 64"
            )
    return int(height), int(width)


def to_pixels(image: np.ndarray) -> Tensor:
    """``(H, W, 3)`` or ``(T, H, W, 3)`` floats in [0, 1] to pixels ``(3, T, H, W)`` in [-1, 1]."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"an image must be (H, W, 3) or (T, H, W, 3), got shape {image.shape}")
    return torch.from_numpy(np.clip(image, 0, 1) * 2 - 1).permute(3, 0, 1, 2).contiguous()


def from_pixels(pixels: Tensor) -> np.ndarray:
    """Pixels ``(3, T, H, W)`` (any range; clipped to [-1, 1]) to ``(T, H, W, 3)`` floats in [0, 1]."""
    if not isinstance(pixels, Tensor) or pixels.ndim != 4 or pixels.shape[0] != 3:
        shape = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor (3, T, H, W), got {shape}")
    array = pixels.detach().float().cpu().clamp(-1, 1).permute(1, 2, 3, 0).numpy()
    return (array + 1) / 2


def single_frame(pixels: Tensor) -> np.ndarray:
    """``(H, W, 3)`` in [0, 1] of image pixels ``(3, 1, H, W)``."""
    frames = from_pixels(pixels)
    if frames.shape[0] != 1:
        raise ValueError(f"this task reads single images (3, 1, H, W), got {frames.shape[0]} frames")
    return frames[0]


#: ``style`` values: the canonical rendering, one drawn per context from the training pool, or
#: from the pool training never sees.
STYLES = ("fixed", "drawn", "unseen")


class GeneratedTask(Task):
    """A task whose examples are generated from a seed: subclasses implement ``make(rng)``, and
    ``draw(rng, pool)`` when their rendering can vary per context (see the module docstring)."""

    #: The ``style`` values this task takes; a task that implements ``draw`` lists more than "fixed".
    styles: tuple[str, ...] = ("fixed",)
    #: The ``style`` used when none is given (held-out variants default to ``"unseen"``).
    default_style: str = "fixed"

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None):
        self.height, self.width = parse_size(size)
        style = self.default_style if style is None else style
        if style not in self.styles:
            raise ValueError(f"task {self.name!r} takes style {' or '.join(map(repr, self.styles))}, got {style!r}")
        self.style = style

    def draw(self, rng: np.random.Generator, pool: str) -> dict[str, Any]:
        """Attribute values of one instance's rendering, from ``pool`` ("drawn" or "unseen")."""
        return {}

    def instance(self, seed: int) -> Task:
        if self.style == "fixed":
            return self
        drawn = copy.copy(self)
        vars(drawn).update(self.draw(np.random.default_rng(seed), self.style))
        return drawn

    @abc.abstractmethod
    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        """One example: the input image ``(H, W, 3)`` / clip ``(T, H, W, 3)`` in [0, 1], and the answer."""

    def example(self, index: int, *, seed: int = 0) -> Example:
        """Example ``index`` of ``seed``: the same as the ``index``-th item of ``examples(count, seed=seed)``."""
        if index < 0 or seed < 0:
            raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
        image, answer = self.make(np.random.default_rng([seed, index]))
        pair = ExamplePair(input=to_pixels(image), target=self.render(answer))
        return Example(pair=pair, answer=answer, id=f"{self.name}-seed{seed}-{index:06d}")

    def examples(self, count: int, *, seed: int = 0) -> Iterator[Example]:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        for index in range(count):
            yield self.example(index, seed=seed)

    def __repr__(self) -> str:
        # every option, so that the latent cache's fingerprint changes when one does
        options = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({options})"

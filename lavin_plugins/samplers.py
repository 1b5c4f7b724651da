"""The built-in prompt samplers: which example pairs of a pool go into a task context.

    registry.get_prompt_sampler("random")                       # without replacement
    registry.get_prompt_sampler("random", replacement=True)
    registry.get_prompt_sampler("fixed")                        # the pool's first pairs, in order
    registry.get_prompt_sampler("fixed", indices=[3, 0, 7])     # these pairs, in this order
    registry.get_prompt_sampler("nearest", encoder=vae)         # closest inputs in latent space

``select(pool, query, num_pairs, generator=...)`` returns indices into ``pool``. The pool is any
sequence of objects with ``.input`` and ``.target`` tensors ``(C, T, H, W)`` (``ExamplePair``s, or
the cached latent pairs the data loader hands over), and ``query`` is shaped like an input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lavin_core.context import ExamplePair
from lavin_core.interfaces import Encoder, PromptSampler

#: The pixel-space nearest-neighbour sampler compares images pooled down to this many pixels a side,
#: which ignores noise and small shifts and keeps distances cheap.
PIXEL_GRID = 16


def _check_request(pool: Sequence[ExamplePair], num_pairs: int, *, replacement: bool = False) -> None:
    if num_pairs < 0:
        raise ValueError(f"num_pairs must be >= 0, got {num_pairs}")
    if not replacement and num_pairs > len(pool):
        raise ValueError(f"asked for {num_pairs} pairs from a pool of {len(pool)}; ask for at most {len(pool)}")
    if replacement and num_pairs and not len(pool):
        raise ValueError("cannot sample pairs from an empty pool")


class RandomPromptSampler(PromptSampler):
    """Uniformly random pairs, without (default) or with replacement."""

    name: ClassVar[str] = "random"

    def __init__(self, *, replacement: bool = False):
        self.replacement = replacement

    def select(self, pool, query, num_pairs, *, generator=None) -> list[int]:
        _check_request(pool, num_pairs, replacement=self.replacement)
        if self.replacement:
            return torch.randint(len(pool), (num_pairs,), generator=generator).tolist()
        return torch.randperm(len(pool), generator=generator)[:num_pairs].tolist()

    def __repr__(self) -> str:
        return f"RandomPromptSampler(replacement={self.replacement})"


class FixedPromptSampler(PromptSampler):
    """Always the same pairs: the first ``num_pairs`` of ``indices`` (default: the pool in order).

    With a template folder as the pool (``lavin_core.data.datasets.TemplateFolder``) this reproduces the
    official inference setup, where the templates are given.
    """

    name: ClassVar[str] = "fixed"

    def __init__(self, *, indices: Sequence[int] | None = None):
        if indices is not None:
            indices = [int(i) for i in indices]
            if any(i < 0 for i in indices):
                raise ValueError(f"indices must be >= 0, got {indices}")
        self.indices = indices

    def select(self, pool, query, num_pairs, *, generator=None) -> list[int]:
        indices = list(range(len(pool))) if self.indices is None else self.indices
        if num_pairs > len(indices):
            raise ValueError(f"asked for {num_pairs} pairs but the fixed list has {len(indices)}: {indices}")
        chosen = indices[:num_pairs]
        for i in chosen:
            if i >= len(pool):
                raise ValueError(f"fixed index {i} is out of range for a pool of {len(pool)} pairs")
        return chosen

    def __repr__(self) -> str:
        return f"FixedPromptSampler(indices={self.indices})"


class NearestPromptSampler(PromptSampler):
    """The pairs whose inputs are closest (L2) to the query, nearest first.

    With an ``encoder``, pixel inputs are compared as latents (the paper's retrieval setting);
    without one they are compared as they come, average-pooled to a small grid: pixels for a
    pixel pool, latents for a pool of cached latents. Ties keep pool order.
    """

    name: ClassVar[str] = "nearest"

    def __init__(self, *, encoder: Encoder | None = None, batch_size: int = 16):
        if encoder is not None and not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be a lavin_core Encoder, got {type(encoder).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder, self.batch_size = encoder, batch_size

    @torch.no_grad()
    def embed(self, tensors: Sequence[Tensor]) -> Tensor:
        """``(N, D)`` features of ``N`` tensors ``(C, T, H, W)`` of one shape."""
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"nearest-neighbour search needs inputs of one shape, got {sorted(shapes)}")
        features = []
        for start in range(0, len(tensors), self.batch_size):
            batch = torch.stack(list(tensors[start : start + self.batch_size])).float()  # (B, C, T, H, W)
            if self.encoder is not None:
                param = next(self.encoder.parameters(), None)
                if param is not None:
                    batch = batch.to(device=param.device, dtype=param.dtype)
                batch = self.encoder.encode(batch).float()
            else:
                size = (batch.shape[2], min(PIXEL_GRID, batch.shape[3]), min(PIXEL_GRID, batch.shape[4]))
                batch = F.adaptive_avg_pool3d(batch, size)
            features.append(batch.flatten(1).cpu())
        return torch.cat(features)

    def select(self, pool, query, num_pairs, *, generator=None) -> list[int]:
        _check_request(pool, num_pairs)
        if not num_pairs:
            return []
        inputs = [pair.input for pair in pool]
        if any(t.shape[1] != query.shape[1] for t in inputs):
            # Clips of other lengths (a long query against short example clips, or an image against
            # clips): compared by their mean frames, the only view they share.
            query, inputs = _mean_frame(query), [_mean_frame(t) for t in inputs]
        features = self.embed([query, *inputs])
        distances = (features[1:] - features[0]).square().sum(1)
        return torch.sort(distances, stable=True).indices[:num_pairs].tolist()

    def __repr__(self) -> str:
        return f"NearestPromptSampler(encoder={type(self.encoder).__name__ if self.encoder else None})"


def _mean_frame(x: Tensor) -> Tensor:
    """``(C, T, H, W)`` -> ``(C, 1, H, W)``: the mean over time."""
    return x.float().mean(dim=1, keepdim=True)


BUILTIN_PROMPT_SAMPLERS = (RandomPromptSampler, FixedPromptSampler, NearestPromptSampler)

"""Exponential moving average of model weights, the weights that get exported and sampled.

The shadow is a frozen copy of the model made before any parallel wrapper is applied, so the
trainer can shard it exactly like the model (FSDP2) and the update is a local, shard-by-shard
``lerp`` with no communication.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for update number ``updates`` (0-based): ``min(decay, (1 + n) / (10 + n))``.

    The warm-up keeps the first updates from being dominated by the random initial weights, so
    short runs get a useful average too; long runs use ``decay`` after ~10 / (1 - decay) steps.
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


class EMA:
    """``shadow <- decay * shadow + (1 - decay) * model`` after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = copy.deepcopy(model).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model`` (the unwrapped module whose parameters match the shadow's)."""
        weight = 1.0 - ema_decay_at(self.decay, self.updates)
        shadow_params = list(self.shadow.parameters())
        model_params = list(model.parameters())
        if len(shadow_params) != len(model_params):
            raise ValueError(f"EMA holds {len(shadow_params)} parameters but the model has {len(model_params)}")
        for average, param in zip(shadow_params, model_params):
            average.lerp_(param.detach().to(average.dtype), weight)
        for average, buffer in zip(self.shadow.buffers(), model.buffers()):
            average.copy_(buffer)
        self.updates += 1

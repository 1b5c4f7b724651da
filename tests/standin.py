"""Small stand-in components for data tests, so they need no ST-VAE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lavin_core.interfaces import Encoder


class PoolEncoder(Encoder):
    """Average-pools 8x8 pixels (keeping frames 0, 4, 8, ...) and projects 3 -> ``channels`` with fixed weights."""

    temporal_compression = 4
    spatial_compression = 8

    def __init__(self, channels: int = 4, seed: int = 0):
        super().__init__()
        self.latent_channels = channels
        weight = torch.randn(channels, 3, generator=torch.Generator().manual_seed(seed))
        self.projection = nn.Parameter(weight, requires_grad=False)
        self.calls = 0  # encode calls, for resume tests

    def encode(self, pixels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        self.calls += 1
        # float64 inside: the same pixels give bit-identical latents whatever the batch
        pooled = F.avg_pool3d(pixels[:, :, :: self.temporal_compression].double(), (1, 8, 8))  # (B, 3, T', h, w)
        return torch.einsum("oc,bcthw->bothw", self.projection.double(), pooled).to(pixels.dtype)

    def decode(self, latents: Tensor) -> Tensor:
        pooled = torch.einsum("co,bothw->bcthw", torch.linalg.pinv(self.projection), latents)
        return F.interpolate(pooled, scale_factor=(1, 8, 8)).clamp(-1, 1)

"""The J-DiT's small building blocks: norms, patch embedding, timestep embedding, SwiGLU, final layer.

Sub-module names follow the authors' checkpoint (``mlp.0``, ``gate_proj``, ``adaLN_modulation.1``,
...) so that the official weights load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lavin_core.jdit.qk_norm_rope import rms_norm


class RMSNorm(nn.Module):
    """RMSNorm over the last dim, computed in float32; ``affine=False`` has no weight (the sandwich norms)."""

    def __init__(self, dim: int, *, eps: float, affine: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


def patch_embedder(patch_dim: int, hidden_size: int) -> nn.Sequential:
    """Flattened ``(pH pW C)`` patches ``(B, L, patch_dim)`` -> ``(B, L, hidden)``: Linear then LayerNorm (eps 1e-5)."""
    return nn.Sequential(nn.Linear(patch_dim, hidden_size), nn.LayerNorm(hidden_size, eps=1e-5))


def timestep_frequencies(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``(B, dim)`` of times ``t`` ``(B,)``: ``[cos(t f), sin(t f)]``, ``f_i = max_period ** (-i / (dim/2))``.

    ``t`` is used as is (no x1000 scaling), as in the official model.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat((args.cos(), args.sin()), dim=-1)


class TimestepEmbedder(nn.Module):
    """Times ``(B,)`` -> ``(B, hidden)``: sinusoidal frequencies then Linear, SiLU, Linear."""

    def __init__(self, hidden_size: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_frequencies(t, self.frequency_dim).to(self.mlp[0].weight.dtype))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``, no biases."""

    def __init__(self, hidden_size: int, width: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, width, bias=False)
        self.up_proj = nn.Linear(hidden_size, width, bias=False)
        self.down_proj = nn.Linear(width, hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


def modulation(hidden_size: int, chunks: int) -> nn.Sequential:
    """adaLN projection of a conditioning vector ``(B, hidden)`` -> ``(B, chunks * hidden)``: SiLU then Linear."""
    return nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, chunks * hidden_size))


class FinalLayer(nn.Module):
    """Target tokens ``(B, L, hidden)`` -> patches ``(B, L, patch_dim)``: RMSNorm, ``x * (1 + scale)``, Linear."""

    def __init__(self, hidden_size: int, patch_dim: int, *, eps: float):
        super().__init__()
        self.norm_final = RMSNorm(hidden_size, eps=eps, affine=False)
        self.adaLN_modulation = modulation(hidden_size, 1)
        self.linear = nn.Linear(hidden_size, patch_dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        scale = self.adaLN_modulation(c)[:, None]  # (B, 1, hidden)
        return self.linear(self.norm_final(x) * (1 + scale))

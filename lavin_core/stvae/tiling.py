"""Tiled encoding and decoding: large frames and long clips in bounded memory.

Space: the input is cut into overlapping square tiles (the last tile in a row or column is moved
back so that it ends on the border, so every tile has full size); each tile goes through the
network on its own and the outputs are blended across the overlaps (see ``edge_ramp``), weights
normalized so they sum to one everywhere.

Time: the latent frames are produced in chunks. Each chunk is computed from its own frames plus
``context_latent_frames`` latent frames' worth of earlier frames (the causal network's context),
and the outputs for those context frames are dropped. With ``context_latent_frames=0`` this is
the authors' scheme (chunks overlapping by one frame).

Tiles do not see each other, and group norms compute their statistics per tile, so results
differ slightly from the untiled network; with one tile covering everything they are identical.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor


@attrs.frozen(kw_only=True)
class TilingConfig:
    """Tile sizes in pixels (space) and latent frames (time)."""

    #: Height and width of a pixel tile; a multiple of the VAE's spatial compression.
    tile_size: int = attrs.field(default=256, validator=attrs.validators.gt(0))
    #: Pixels shared by neighbouring tiles, blended; a multiple of the spatial compression.
    tile_overlap: int = attrs.field(default=64, validator=attrs.validators.ge(0))
    #: Latent frames produced per temporal chunk.
    tile_latent_frames: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    #: Extra latent frames of earlier context computed (and dropped) before each chunk.
    context_latent_frames: int = attrs.field(default=2, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.tile_overlap >= self.tile_size:
            raise ValueError(
                f"tile_overlap ({self.tile_overlap}) must be smaller than tile_size ({self.tile_size})"
            )

    def check(self, spatial_compression: int) -> None:
        """Raise ``ValueError`` unless tile size and overlap are multiples of ``spatial_compression``."""
        if self.tile_size % spatial_compression or self.tile_overlap % spatial_compression:
            raise ValueError(
                f"tile_size ({self.tile_size}) and tile_overlap ({self.tile_overlap}) must be multiples "
                f"of the spatial compression {spatial_compression}"
            )


# ---------------------------------------------------------------------------------------------
# pure helpers


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared.

    The last tile is moved back to end at ``length``; one tile ``[0]`` if ``length <= tile``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def edge_ramp(size: int, overlap: int, *, left: bool, right: bool) -> Tensor:
    """Blend weights ``(size,)`` for a tile whose neighbours overlap it by ``overlap`` entries.

    At a ``left`` (``right``) neighbour the first (last) quarter of the overlap gets weight 0,
    the middle half a linear ramp and the rest 1: a tile's outermost outputs, the ones most
    disturbed by its border, are left to the neighbour that sees them in its interior.
    """
    weights = torch.ones(size)
    overlap = min(overlap, size)
    margin = overlap // 4
    ramp = overlap - 2 * margin
    rise = torch.cat([torch.zeros(margin), torch.arange(1, ramp + 1, dtype=torch.float32) / (ramp + 1)])
    if left:
        weights[: rise.numel()] = torch.minimum(weights[: rise.numel()], rise)
    if right:
        weights[size - rise.numel():] = torch.minimum(weights[size - rise.numel():], rise.flip(0))
    return weights


def chunk_plan(num_latents: int, chunk: int, context: int) -> list[tuple[int, int, int]]:
    """Temporal chunks as ``(first computed, first kept, end)`` latent indices.

    Chunk ``k`` computes latents ``[first computed, end)`` and keeps ``[first kept, end)``; the
    kept ranges partition ``[0, num_latents)``. A chunk that does not start at 0 also computes
    the latent just before it (whose frame opens the chunk) and ``context`` more.
    """
    plan = []
    for kept in range(0, num_latents, chunk):
        computed = 0 if kept == 0 else max(0, kept - 1 - context)
        plan.append((computed, kept, min(kept + chunk, num_latents)))
    return plan


# ---------------------------------------------------------------------------------------------
# tiled application


def tiled_spatial(fn: Callable[[Tensor], Tensor], x: Tensor, *, tile: int, overlap: int, scale: float) -> Tensor:
    """``fn`` applied tile by tile over the last two axes of ``x``, outputs blended.

    ``fn`` maps an input tile ``(B, C, T, t_h, t_w)`` to ``(B, C', T', t_h * scale, t_w * scale)``.
    """
    height, width = x.shape[-2:]
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return fn(x)
    out_overlap = round(overlap * scale)
    out = weight_sum = None
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            y = fn(x[..., top:top + tile, left:left + tile])
            if out is None:
                out = y.new_zeros((*y.shape[:-2], round(height * scale), round(width * scale)))
                weight_sum = y.new_zeros(out.shape[-2:])
            w = (
                edge_ramp(y.shape[-2], out_overlap, left=i > 0, right=i < len(rows) - 1)[:, None]
                * edge_ramp(y.shape[-1], out_overlap, left=j > 0, right=j < len(cols) - 1)[None, :]
            ).to(y)
            y_top, y_left = round(top * scale), round(left * scale)
            region = (..., slice(y_top, y_top + y.shape[-2]), slice(y_left, y_left + y.shape[-1]))
            out[region] += y * w
            weight_sum[region[1:]] += w
    return out / weight_sum


def tiled_encode_moments(
    encoder: Callable[[Tensor], Tensor], pixels: Tensor, config: TilingConfig, *,
    spatial_compression: int, temporal_compression: int,
) -> Tensor:
    """Encoder moments ``(B, 2C, T', h, w)`` of ``pixels`` ``(B, 3, T, H, W)``, computed in tiles."""
    num_latents = 1 + (pixels.shape[2] - 1) // temporal_compression
    pieces = []
    for computed, kept, end in chunk_plan(num_latents, config.tile_latent_frames, config.context_latent_frames):
        frames = pixels[:, :, computed * temporal_compression:(end - 1) * temporal_compression + 1]
        moments = tiled_spatial(
            encoder, frames, tile=config.tile_size, overlap=config.tile_overlap, scale=1 / spatial_compression
        )
        pieces.append(moments[:, :, kept - computed:])
    return torch.cat(pieces, dim=2)


def tiled_decode(
    decoder: Callable[[Tensor], Tensor], z: Tensor, config: TilingConfig, *,
    spatial_compression: int, temporal_compression: int,
) -> Tensor:
    """Decoder output ``(B, 3, T, H, W)`` for raw latents ``z`` ``(B, C, T', h, w)``, computed in tiles."""
    pieces = []
    for computed, kept, end in chunk_plan(z.shape[2], config.tile_latent_frames, config.context_latent_frames):
        frames = tiled_spatial(
            decoder, z[:, :, computed:end], tile=config.tile_size // spatial_compression,
            overlap=config.tile_overlap // spatial_compression, scale=spatial_compression,
        )
        # Latent ``computed`` decodes to frame ``computed * tc``; latent ``kept`` starts at
        # frame ``(kept - 1) * tc + 1`` (or at frame 0 for the first chunk).
        first = 0 if kept == 0 else (kept - 1 - computed) * temporal_compression + 1
        pieces.append(frames[:, :, first:])
    return torch.cat(pieces, dim=2)

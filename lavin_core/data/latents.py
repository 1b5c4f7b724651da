"""Latents of example images, looked up instead of encoded: the protocol a latent cache fills, and its key.

``LatentCache.get(pixels)`` is what the pipeline asks before encoding an example; the Zarr cache
(``lavin_core.data.cache``) and ``MemoryLatentCache`` answer it, keyed by ``pixel_key``.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class LatentCache(Protocol):
    """Where the pipeline looks up example latents before encoding them.

    ``get(pixels)`` receives one example image or clip ``(3, T, H, W)`` (an input or a target
    of a pair) and returns its normalized latents ``(C, T', h, w)`` under the pipeline's encoder,
    or ``None`` when it does not hold them. The cache is responsible for only answering for the
    encoder it was built with (e.g. by checking a weights fingerprint when it is opened); a
    content key is ``pixel_key(pixels)``. The query is always encoded, never looked up.
    """

    def get(self, pixels: Tensor) -> Tensor | None: ...


def pixel_key(pixels: Tensor) -> str:
    """A content key for pixels: sha256 of the shape and the float32 bytes (device and dtype blind)."""
    data = pixels.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(repr(tuple(data.shape)).encode())
    digest.update(data.numpy().tobytes())
    return digest.hexdigest()


class MemoryLatentCache:
    """A ``LatentCache`` in a dict keyed by ``pixel_key``; ``put`` fills it (e.g. from ``encode``)."""

    def __init__(self) -> None:
        self._latents: dict[str, Tensor] = {}

    def put(self, pixels: Tensor, latents: Tensor) -> None:
        self._latents[pixel_key(pixels)] = latents.detach()

    def get(self, pixels: Tensor) -> Tensor | None:
        return self._latents.get(pixel_key(pixels))

    def __len__(self) -> int:
        return len(self._latents)

"""Classifier-free guidance (CFG) with the official null context.

The null context drops the example pairs and keeps the query behind one all-zero frame:
``[0, query]``. The guided velocity is ``v_null + s (v_cond - v_null)``.

How the two passes run: when the conditional and the null context have the same shape, both go
through the denoiser in ONE call on a doubled batch (the usual DiT trick: one launch, better use of
the device). With the official null context they almost never do: ``[in_1, tgt_1, ..., query]``
has ``2N + 1`` frames (per clip length) against 2 for ``[0, query]``, and padding the null context
to the conditional length would change what attention sees. Then the two passes run as two calls,
and the null pass is the cheap one (its sequence is short). ``guided_velocity`` decides by
comparing the two context shapes, nothing else.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lavin_core.interfaces import Denoiser


def null_context(query_latents: Tensor) -> Tensor:
    """The official null context ``[0, query]`` for query latents ``(B, C, T_q, h, w)``: ``(B, C, 1 + T_q, h, w)``."""
    if query_latents.ndim != 5:
        raise ValueError(f"query latents must be (B, C, T, h, w), got shape {tuple(query_latents.shape)}")
    zero = query_latents.new_zeros(query_latents.shape[:2] + (1,) + query_latents.shape[3:])
    return torch.cat([zero, query_latents], dim=2)


def null_context_from_cond(cond: Tensor, query_frames: int = 1) -> Tensor:
    """The null context of a conditional context ``(B, C, T_cond, h, w)`` whose last ``query_frames`` are the query."""
    if not 1 <= query_frames <= cond.shape[2]:
        raise ValueError(f"query_frames must lie in [1, {cond.shape[2]}], got {query_frames}")
    return null_context(cond[:, :, -query_frames:])


def can_batch(cond: Tensor, null_cond: Tensor) -> bool:
    """True when both passes fit one denoiser call: the two contexts have the same shape."""
    return cond.shape == null_cond.shape


def guided_velocity(
    denoiser: Denoiser,
    z: Tensor,
    t: Tensor,
    cond: Tensor,
    *,
    null_cond: Tensor | None = None,
    guidance_scale: float = 1.0,
    batch_passes: bool = True,
) -> Tensor:
    """The velocity at ``z`` ``(B, C, T, h, w)``, times ``t`` ``(B,)``, guided by ``guidance_scale``.

    Without ``null_cond`` or with ``guidance_scale == 1`` this is the conditional pass alone (one
    call). Otherwise both passes run, in one batched call when ``batch_passes`` and the contexts'
    shapes allow (see the module docstring), else in two.
    """
    if null_cond is None or guidance_scale == 1.0:
        return denoiser(z, t, cond)
    if null_cond.shape[0] != cond.shape[0] or null_cond.shape[1] != cond.shape[1] or null_cond.shape[3:] != cond.shape[3:]:
        raise ValueError(
            f"null context {tuple(null_cond.shape)} must match the context {tuple(cond.shape)} in batch, "
            f"channels, height and width (only the frame count may differ)"
        )
    if batch_passes and can_batch(cond, null_cond):
        both = denoiser(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond, null_cond]))
        v_cond, v_null = both.chunk(2)
    else:
        v_cond = denoiser(z, t, cond)
        v_null = denoiser(z, t, null_cond)
    return v_null + guidance_scale * (v_cond - v_null)

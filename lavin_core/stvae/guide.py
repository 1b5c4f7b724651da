"""The query guide of the ST-VAE decoder: the query's pixels shown to the decoder beside the latents.

A 16 x 8 x 8 latent cannot carry a 64x64 frame's fine detail (the lavin-tiny round trip is
23.7 dB), so an answer that is mostly the query itself (a restoration, a colour or tone map) loses
to a plain copy of the query however well the J-DiT predicts its latents. The fix follows the
asymmetric autoencoders of image editing (Zhu et al. 2023, "Designing a Better Asymmetric VQGAN
for StableDiffusion"): the encoder and the latents stay as they are, and the decoder also sees the
conditional image, here the query, through a small per-frame pyramid whose features are added to
the decoder's activations at each matching resolution. The latents say *what* the answer is, the
guide supplies detail where the answer reuses the query's.

Every injection goes through a 1x1 convolution that starts at zero (``GuideBranch.zero_``), so a
decoder given a new branch computes exactly what it did without one; training then learns how much
of the query to let through, task by task (a segmentation map ignores it, an inpainting copies it
outside the hole).

Which query frames guide which answer frames (``guide_frames``): the query itself when it has as
many frames as the answer (images, per-frame video tasks), else its last frame repeated (an image
answered by a clip, frame prediction: the latest frame is the nearest to every answer frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lavin_core.stvae.layers import per_frame


def guide_frames(query: Tensor, frames: int, size: tuple[int, int] | None = None) -> Tensor:
    """The guide ``(B, 3, frames, H, W)`` for an answer of ``frames`` frames from query pixels ``(B, 3, T_q, H_q, W_q)``.

    The query when ``T_q == frames``, else its last frame repeated ``frames`` times; resized
    (bilinear, per frame) to ``size = (H, W)`` when given and different.
    """
    if query.ndim != 5:
        raise ValueError(f"the guide's query must be (B, 3, T, H, W), got shape {tuple(query.shape)}")
    if frames < 1:
        raise ValueError(f"the answer must have at least one frame, got {frames}")
    guide = query if query.shape[2] == frames else query[:, :, -1:].expand(-1, -1, frames, -1, -1)
    if size is not None and tuple(guide.shape[-2:]) != tuple(size):
        guide = per_frame(lambda x: F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False), guide)
    return guide


class GuideBranch(nn.Module):
    """Per-frame features of the guide at 1, 1/2, ..., 1/``2 ** (levels - 1)`` of its size, and one
    zero-initialised projection per injection point of the decoder.

    ``widths[k]``: the feature width at level ``k`` (size ``H / 2 ** k``); ``targets``: per
    injection point, ``(level, decoder channels)``.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], targets: tuple[tuple[int, int], ...]):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Conv2d(widths[max(k - 1, 0)], widths[k], 3, stride=1 if k == 0 else 2, padding=1),
                          nn.SiLU(), nn.Conv2d(widths[k], widths[k], 3, padding=1))
            for k in range(len(widths))
        )
        self.targets = tuple(targets)
        self.projections = nn.ModuleList(nn.Conv2d(widths[level], channels, 1) for level, channels in targets)
        self.zero_()

    def zero_(self) -> None:
        """Every projection to zero: the decoder then ignores the guide (its output is as without one)."""
        for projection in self.projections:
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)

    def features(self, guide: Tensor) -> list[Tensor]:
        """Per level ``k``, features ``(B, widths[k], T, H / 2 ** k, W / 2 ** k)`` of the guide ``(B, 3, T, H, W)``."""
        out, x = [], per_frame(self.stem, guide)
        for level in self.levels:
            x = per_frame(level, x)
            out.append(x)
        return out

    def inject(self, index: int, x: Tensor, features: list[Tensor] | None) -> Tensor:
        """``x`` plus injection point ``index``'s projection of its level's features, when their
        frames and size match ``x``'s (a time-compressed stage of a clip is left alone)."""
        if features is None:
            return x
        level, _ = self.targets[index]
        feature = features[level]
        if feature.shape[2:] != x.shape[2:]:
            return x
        return x + per_frame(self.projections[index], feature).to(x.dtype)


def answer_shape(z: Tensor, spatial_compression: int, temporal_compression: int) -> tuple[int, tuple[int, int]]:
    """``(frames, (H, W))`` of the pixels that latents ``z`` ``(B, C, T', h, w)`` decode to: the guide's shape."""
    return 1 + (z.shape[2] - 1) * temporal_compression, (z.shape[3] * spatial_compression, z.shape[4] * spatial_compression)


def check_guide(guide: Tensor, z: Tensor, spatial_compression: int, temporal_compression: int) -> None:
    """Raise a one-line ``ValueError`` unless ``guide`` ``(B, 3, T, H, W)`` fits the pixels that ``z`` decodes to."""
    frames, size = answer_shape(z, spatial_compression, temporal_compression)
    wanted = (z.shape[0], 3, frames, *size)
    if not isinstance(guide, Tensor) or tuple(guide.shape) != wanted:
        got = tuple(guide.shape) if isinstance(guide, Tensor) else type(guide).__name__
        raise ValueError(f"the guide must be the answer's pixel shape {wanted} for latents {tuple(z.shape)}, got {got}; "
                         "build it with lavin_core.stvae.guide.guide_frames(query, frames, size)")
    if not torch.isfinite(guide).all():
        raise ValueError("the guide holds NaN or infinite pixels; pass finite values in [-1, 1]")

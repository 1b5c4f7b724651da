"""Noise on the latents a decoder is trained on, so that it decodes a denoiser's estimates well.

A J-DiT's sampled latents are the truth's plus an error of 10-40 % of the latents' RMS (measured
on lavin-tiny-icl: 0.10-0.17 on the restorations, 0.14 on a colour map, about 0.4 on
colorization and segmentation), and decoding the truth plus Gaussian noise of that size scores
within 1 dB of decoding the J-DiT's own estimate on the restorations. A decoder trained on clean
latents alone trusts every latent detail; trained on noisy ones (noise augmentation, as cascaded
diffusion models condition on noisy low-resolution inputs) it learns to take from its other
input, the query's pixels (``guide``), what the latent has lost.

    >>> z = noisy_latents(z, max_noise=0.3, generator=g)  # each sample: z + s * rms(z) * eps, s ~ U(0, 0.3)
"""

from __future__ import annotations

import torch
from torch import Tensor


def noisy_latents(z: Tensor, max_noise: float, generator: torch.Generator | None = None) -> Tensor:
    """``z`` plus Gaussian noise whose standard deviation, per sample, is ``s`` times that sample's
    latent RMS, with ``s`` drawn uniformly from ``[0, max_noise]``. ``max_noise = 0`` returns ``z``."""
    if not 0.0 <= max_noise <= 1.0:
        raise ValueError(f"max_noise must be between 0 and 1 (a fraction of the latents' RMS), got {max_noise}")
    if max_noise == 0.0:
        return z
    shape = (z.shape[0],) + (1,) * (z.ndim - 1)
    scale = torch.rand(shape, generator=generator, device=z.device, dtype=torch.float32) * max_noise
    rms = z.detach().float().pow(2).mean(dim=tuple(range(1, z.ndim)), keepdim=True).sqrt()
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=torch.float32)
    return z + (noise * scale * rms).to(z.dtype)

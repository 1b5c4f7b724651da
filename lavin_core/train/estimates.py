"""A J-DiT's estimates of a training batch's target latents, for a decoder learning to decode them.

A decoder trained on clean latents trusts every detail of them; the J-DiT's sampled latents
miss the truth's by 10-40 % of their RMS, with errors that look like plausible latents rather
than noise (configs/lavin-tiny-icl/README.md, seventh step). With ``vae.denoiser`` set, the vae
stage decodes, on a share of its steps, what a trained J-DiT samples for whole in-context
contexts (its own pair counts, its recommended guidance) and learns to turn those into the true
targets, its guide the query's pixels: the refiner of a cascaded model, trained on the
generator's real outputs.

    estimator = TargetEstimator.load("lavin-tiny-icl", encoder=stvae, num_steps=10)
    latents = estimator(batch, generator)      # (B, C, T', h, w), the J-DiT's answers for batch's contexts

The encoder must be the one the J-DiT was trained on (frozen: ``vae.train_encoder = false``), so
its latents are the ones the J-DiT reads and writes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lavin_core.data.loader import ContextBatch
from lavin_core.interfaces import Encoder
from lavin_core.pipeline import InContextPipeline
from lavin_core.pretrained import folders
from lavin_core.pretrained.loading import load_denoiser


def is_estimate_step(step: int, share: float) -> bool:
    """Whether ``step`` is one of the ``share`` of steps that decode estimates, spread evenly:
    steps ``0..n-1`` hold exactly ``floor(n * share)`` of them, for every ``n``."""
    return int((step + 1) * share) > int(step * share)


class TargetEstimator:
    """Samples a J-DiT's latent answer for each context of a pixel batch (one sample each)."""

    def __init__(self, pipe: InContextPipeline, *, num_steps: int):
        self.pipe, self.num_steps = pipe, num_steps

    @classmethod
    def load(cls, denoiser: str, *, encoder: Encoder, num_steps: int, device: str | torch.device = "cpu",
             precision: str = "auto") -> TargetEstimator:
        """The J-DiT ``denoiser`` names behind ``encoder``, frozen, on ``device``: a model name or
        folder (sampled with its recommended guidance and temperature) or a J-DiT checkpoint (the
        official settings)."""
        dit = load_denoiser(denoiser, device=device).requires_grad_(False).eval()
        named = denoiser in folders.MODELS or folders.is_model_folder(denoiser)
        defaults = folders.get_model(denoiser).recommended if named else None
        return cls(InContextPipeline(encoder, dit, defaults=defaults, precision=precision), num_steps=num_steps)

    @torch.no_grad()
    def __call__(self, batch: ContextBatch, generator: torch.Generator) -> Tensor:
        """Normalized latents ``(B, C, T', h, w)``: one sample per context of ``batch`` (pixels)."""
        out = self.pipe(batch.contexts(), num_samples=1, num_steps=self.num_steps, processing_size=0,
                        generator=generator, output_type="latent", progress=False)
        return torch.stack(list(out.latents))

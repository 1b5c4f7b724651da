"""The ST-VAE posterior: a diagonal Gaussian over the raw (un-normalized) latents."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

#: The encoder's log-variance is clamped to this range, as in the authors' code.
LOGVAR_RANGE = (-30.0, 20.0)


@attrs.frozen
class DiagonalGaussian:
    """``N(mean, exp(logvar))`` per latent element; both ``(B, C, T', h, w)``."""

    mean: Tensor
    logvar: Tensor

    @classmethod
    def from_moments(cls, moments: Tensor) -> DiagonalGaussian:
        """Split the encoder output ``(B, 2C, ...)`` into mean and (clamped) log-variance."""
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar.clamp(*LOGVAR_RANGE))

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """``mean + std * e`` with ``e ~ N(0, 1)`` drawn from ``generator``; differentiable in mean and logvar."""
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def kl(self) -> Tensor:
        """``KL(q || N(0, 1))`` summed over every latent element: shape ``(B,)``.

        (The authors' code sums over dims 1-3 only, which on 5D latents leaves the width axis
        unsummed; this sums all of them.)
        """
        terms = self.mean.square() + self.logvar.exp() - 1.0 - self.logvar
        return 0.5 * terms.flatten(1).sum(dim=1)

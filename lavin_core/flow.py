"""Conditional flow matching (CFM) in the paper's time convention.

``t = 0`` is data, ``t = 1`` is noise. The path is the straight line ``z_t = (1 - t) z + t e``
and the network learns its velocity ``dz_t/dt = e - z``. Sampling integrates ``dz/dt = v`` from
``t = 1`` down to ``t = 0`` (see ``lavin_core.samplers``).

Everything random takes a ``torch.Generator`` so that a training step is reproducible from a seed.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# the path


def _broadcast_time(t: Tensor, like: Tensor) -> Tensor:
    """``t`` ``(B,)`` (or a scalar) reshaped to ``(B, 1, ..., 1)`` so it broadcasts against ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, *([1] * (like.ndim - 1)))


def interpolate(z: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
    """The point ``z_t = (1 - t) z + t e`` of the linear path; ``z``, ``noise`` ``(B, ...)``, ``t`` ``(B,)``."""
    if z.shape != noise.shape:
        raise ValueError(f"z {tuple(z.shape)} and noise {tuple(noise.shape)} must have one shape")
    t = _broadcast_time(t, z)
    return (1 - t) * z + t * noise


def target_velocity(z: Tensor, noise: Tensor) -> Tensor:
    """The velocity of the linear path, ``e - z`` (it does not depend on t)."""
    if z.shape != noise.shape:
        raise ValueError(f"z {tuple(z.shape)} and noise {tuple(noise.shape)} must have one shape")
    return noise - z


def training_pair(
    z: Tensor, t: Tensor, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Network input and regression target for clean latents ``z`` at times ``t`` ``(B,)``.

    Draws ``e ~ N(0, I)`` from ``generator`` and returns ``(z_t, e - z)``, both shaped like ``z``.
    """
    noise = randn_like(z, generator=generator)
    return interpolate(z, noise, t), target_velocity(z, noise)


def randn_like(like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device, then moved.

    Drawing where the generator lives (as diffusers does) makes a CPU seed give the same noise
    whatever device the model runs on.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(like.shape, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=like.device, dtype=like.dtype)


# ---------------------------------------------------------------------------------------------
# the loss


@attrs.frozen(kw_only=True)
class FlowMatchingLossConfig:
    """``kind="mse"``: mean squared error; ``"official"``: MSE + ``l1_weight`` * mean absolute error."""

    kind: Literal["mse", "official"] = attrs.field(
        default="official", validator=attrs.validators.in_(("mse", "official"))
    )
    l1_weight: float = attrs.field(default=0.1, validator=attrs.validators.ge(0.0))


class FlowMatchingLoss(nn.Module):
    """The CFM regression loss between a predicted and the target velocity.

    ``forward(prediction, target)`` with both ``(B, C, T, h, w)`` returns a scalar: the mean over
    every element. ``per_sample(prediction, target)`` returns the ``(B,)`` losses before the mean.
    """

    def __init__(self, config: FlowMatchingLossConfig | None = None, **kwargs):
        super().__init__()
        self.config = config if config is not None else FlowMatchingLossConfig(**kwargs)

    def per_sample(self, prediction: Tensor, target: Tensor) -> Tensor:
        if prediction.shape != target.shape:
            raise ValueError(
                f"predicted velocity {tuple(prediction.shape)} and target {tuple(target.shape)} must have one shape"
            )
        diff = (prediction - target).float().flatten(1)
        loss = diff.square().mean(dim=1)
        if self.config.kind == "official":
            loss = loss + self.config.l1_weight * diff.abs().mean(dim=1)
        return loss

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(prediction, target).mean()

    def extra_repr(self) -> str:
        return f"kind={self.config.kind!r}, l1_weight={self.config.l1_weight}"


# ---------------------------------------------------------------------------------------------
# training times


def shift_time(t: Tensor, shift: float) -> Tensor:
    """The resolution time shift ``s t / (1 + (s - 1) t)`` (SD3), in our convention (1 = noise).

    ``shift > 1`` moves times toward noise, which larger images need: more pixels carry the same
    signal, so a given t destroys less of it. ``shift = 1`` is the identity; 0 and 1 stay fixed.
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(num_tokens: int, *, base_tokens: int = 256) -> float:
    """The shift that keeps the signal-to-noise ratio of ``base_tokens`` at ``num_tokens`` tokens.

    SD3's rule: the noise level needed scales with ``sqrt(num_tokens / base_tokens)``.
    """
    if num_tokens <= 0 or base_tokens <= 0:
        raise ValueError(f"token counts must be positive, got {num_tokens} and {base_tokens}")
    return math.sqrt(num_tokens / base_tokens)


def _draw_uniform(batch: int, generator: torch.Generator | None, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(batch, generator=generator, device=gen_device).to(device)


@attrs.frozen(kw_only=True)
class UniformTimeSampler:
    """Training times ``t ~ U(0, 1)``, then shifted by ``shift`` (1 = no shift)."""

    shift: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))

    def __call__(self, batch: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``(batch,)`` float32 times in [0, 1] on ``device``."""
        return shift_time(_draw_uniform(batch, generator, device or "cpu"), self.shift)


@attrs.frozen(kw_only=True)
class LogitNormalTimeSampler:
    """Training times ``t = sigmoid(loc + scale * n)``, ``n ~ N(0, 1)``, then shifted by ``shift``.

    ``loc=0, scale=1`` is the official training distribution; it spends most steps at middle
    times where the velocity is hardest to predict.
    """

    loc: float = 0.0
    scale: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))
    shift: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))

    def __call__(self, batch: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``(batch,)`` float32 times in (0, 1) on ``device``."""
        device = device or "cpu"
        gen_device = generator.device if generator is not None else device
        normal = torch.randn(batch, generator=generator, device=gen_device).to(device)
        return shift_time(torch.sigmoid(self.loc + self.scale * normal), self.shift)


#: Time samplers by name, for configs: ``TIME_SAMPLERS[name](**options)``.
TIME_SAMPLERS: dict[str, type] = {
    "uniform": UniformTimeSampler,
    "logit-normal": LogitNormalTimeSampler,
}

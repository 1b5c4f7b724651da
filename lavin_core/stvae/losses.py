"""ST-VAE training losses, as parts a trainer composes, and the paper's two-stage schedule.

- ``reconstruction_loss``: L1 or MSE between reconstruction and target pixels;
- ``DiagonalGaussian.kl`` / ``kl_loss``: KL of the posterior to N(0, 1);
- ``PerceptualLoss``: distance between multi-scale features of any 2D feature network, applied
  frame by frame. The default network, ``RandomConvFeatures``, needs no download: it is a small
  convolutional network with FIXED RANDOM (seeded, never trained) weights. Random conv features
  capture local structure and texture at several scales and so penalise blur beyond per-pixel
  error, but they are not a learned perceptual metric; pass a pretrained network (LPIPS / VGG
  features) for the quality the paper reports;
- ``PatchDiscriminator3D`` with ``hinge_discriminator_loss`` / ``hinge_generator_loss``;
- ``STVAELoss``: the weighted sum of the above for the autoencoder's update;
- ``TrainingStage`` / ``STVAETrainingSchedule``: images first, then images and videos jointly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lavin_core.stvae.posterior import DiagonalGaussian

# ---------------------------------------------------------------------------------------------
# pure loss functions


def _check_same_shape(reconstruction: Tensor, target: Tensor) -> None:
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} differ in shape"
        )


def reconstruction_loss(reconstruction: Tensor, target: Tensor, kind: Literal["l1", "mse"] = "l1") -> Tensor:
    """Mean absolute (``"l1"``) or squared (``"mse"``) error between two pixel tensors of one shape."""
    _check_same_shape(reconstruction, target)
    if kind == "l1":
        return (reconstruction - target).abs().mean()
    if kind == "mse":
        return (reconstruction - target).square().mean()
    raise ValueError(f"kind must be 'l1' or 'mse', got {kind!r}")


def kl_loss(posterior: DiagonalGaussian) -> Tensor:
    """The posterior's KL to N(0, 1), summed over latent elements and averaged over the batch."""
    return posterior.kl().mean()


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``(mean(relu(1 - real)) + mean(relu(1 + fake))) / 2``: the discriminator's hinge loss."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-mean(fake)``: the autoencoder's adversarial loss against a hinge discriminator."""
    return -fake_logits.mean()


def frames_as_images(x: Tensor) -> Tensor:
    """``(B, C, T, H, W) -> (B * T, C, H, W)``; 4D input is returned as is."""
    if x.ndim == 4:
        return x
    if x.ndim != 5:
        raise ValueError(f"expected (B, C, H, W) or (B, C, T, H, W), got shape {tuple(x.shape)}")
    return x.transpose(1, 2).flatten(0, 1)


def feature_distance(a: Tensor, b: Tensor, eps: float = 1e-10) -> Tensor:
    """LPIPS-style distance of two feature maps ``(N, C, H, W)``: unit-normalize over channels,
    squared difference summed over channels, averaged over positions: shape ``(N,)``."""
    a = a / (a.square().sum(dim=1, keepdim=True) + eps).sqrt()
    b = b / (b.square().sum(dim=1, keepdim=True) + eps).sqrt()
    return (a - b).square().sum(dim=1).flatten(1).mean(dim=1)


# ---------------------------------------------------------------------------------------------
# perceptual loss


class RandomConvFeatures(nn.Module):
    """A frozen conv net with seeded random weights returning features at ``len(widths)`` scales.

    ``(N, 3, H, W)`` in [-1, 1] -> ``[(N, widths[i], H / 2**i, W / 2**i)]``. No download, no
    training: the weights are He-normal draws from ``torch.Generator().manual_seed(seed)``, so
    every instance with the same arguments computes the same function.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 128), *, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.stages = nn.ModuleList()
        in_channels = 3
        for i, width in enumerate(widths):
            first = nn.Conv2d(in_channels, width, 3, stride=1 if i == 0 else 2, padding=1)
            second = nn.Conv2d(width, width, 3, padding=1)
            for conv in (first, second):
                fan_in = conv.in_channels * 9
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                    conv.bias.zero_()
            self.stages.append(nn.Sequential(first, nn.ReLU(), second, nn.ReLU()))
            in_channels = width
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        features, x = [], images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class PerceptualLoss(nn.Module):
    """Mean ``feature_distance`` over the scales of ``feature_net``, frame by frame.

    ``feature_net`` maps images ``(N, 3, H, W)`` in [-1, 1] to a list of feature maps (or one
    map); default ``RandomConvFeatures()`` (random weights, see the module docstring). Its
    parameters are frozen; gradients flow to the reconstruction only.
    """

    def __init__(self, feature_net: nn.Module | None = None):
        super().__init__()
        self.feature_net = (feature_net or RandomConvFeatures()).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.feature_net.eval()  # a fixed metric: no dropout or batch-norm updates
        return self

    def forward(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        """Scalar loss for pixels ``(B, 3, T, H, W)`` (or ``(B, 3, H, W)``) of one shape."""
        _check_same_shape(reconstruction, target)
        both = self.feature_net(torch.cat([frames_as_images(reconstruction), frames_as_images(target)]))
        both = [both] if isinstance(both, Tensor) else both
        total = sum(feature_distance(*f.chunk(2)).mean() for f in both)
        return total / len(both)


# ---------------------------------------------------------------------------------------------
# adversarial loss


class PatchDiscriminator3D(nn.Module):
    """A PatchGAN over clips: ``(B, 3, T, H, W) -> (B, 1, T, H / 2**num_layers, W / 2**num_layers)`` logits.

    Each block halves height and width with a ``(3, 4, 4)`` conv (time kept, so an image is a
    one-frame clip), group norm and LeakyReLU(0.2); a final 3x3x3 conv gives one logit per patch.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_layers: int = 3, *, groups: int = 16):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv3d(in_channels, channels, (3, 4, 4), stride=(1, 2, 2), padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = channels
        for i in range(1, num_layers):
            next_width = channels * min(2**i, 8)
            layers += [
                nn.Conv3d(width, next_width, (3, 4, 4), stride=(1, 2, 2), padding=1, bias=False),
                nn.GroupNorm(min(groups, next_width), next_width),
                nn.LeakyReLU(0.2),
            ]
            width = next_width
        layers.append(nn.Conv3d(width, 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: Tensor) -> Tensor:
        if pixels.ndim == 4:
            pixels = pixels.unsqueeze(2)
        return self.layers(pixels)


# ---------------------------------------------------------------------------------------------
# composition


@attrs.frozen(kw_only=True)
class LossWeights:
    """How ``STVAELoss`` weighs its terms; the adversarial terms switch on at ``adversarial_start_step``."""

    reconstruction: Literal["l1", "mse"] = attrs.field(default="l1", validator=attrs.validators.in_(("l1", "mse")))
    reconstruction_weight: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    kl_weight: float = attrs.field(default=1e-6, validator=attrs.validators.ge(0.0))
    perceptual_weight: float = attrs.field(default=0.1, validator=attrs.validators.ge(0.0))
    adversarial_weight: float = attrs.field(default=0.05, validator=attrs.validators.ge(0.0))
    adversarial_start_step: int = attrs.field(default=5_000, validator=attrs.validators.ge(0))


class STVAELoss(nn.Module):
    """The autoencoder's loss: weighted reconstruction + KL + perceptual (+ adversarial once started).

    ``forward(target, reconstruction, posterior, step, discriminator=None)`` returns a dict of
    the unweighted terms and ``"total"`` (the weighted sum to back-propagate). The discriminator
    is trained separately with ``hinge_discriminator_loss`` on ``reconstruction.detach()``.
    """

    def __init__(self, weights: LossWeights | None = None, perceptual: PerceptualLoss | None = None):
        super().__init__()
        self.weights = weights or LossWeights()
        if perceptual is None and self.weights.perceptual_weight:
            perceptual = PerceptualLoss()
        self.perceptual = perceptual

    def forward(
        self, target: Tensor, reconstruction: Tensor, posterior: DiagonalGaussian, *, step: int = 0,
        discriminator: nn.Module | None = None,
    ) -> dict[str, Tensor]:
        w = self.weights
        terms = {
            "reconstruction": reconstruction_loss(reconstruction, target, w.reconstruction),
            "kl": kl_loss(posterior),
        }
        total = w.reconstruction_weight * terms["reconstruction"] + w.kl_weight * terms["kl"]
        if self.perceptual is not None and w.perceptual_weight:
            terms["perceptual"] = self.perceptual(reconstruction, target)
            total = total + w.perceptual_weight * terms["perceptual"]
        if discriminator is not None and w.adversarial_weight and step >= w.adversarial_start_step:
            terms["adversarial"] = hinge_generator_loss(discriminator(reconstruction))
            total = total + w.adversarial_weight * terms["adversarial"]
        terms["total"] = total
        return terms


# ---------------------------------------------------------------------------------------------
# the two-stage schedule


def _frames(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1 or (value - 1) % 4:
        raise ValueError(f"{attribute.name} must be 1 + 4k (1, 5, 9, 17, ...), got {value}")


@attrs.frozen(kw_only=True)
class TrainingStage:
    """One training stage: what the batches hold and for how many steps."""

    name: str
    steps: int = attrs.field(validator=attrs.validators.gt(0))
    #: Share of each batch that is clips; the rest are images. 0 = images only.
    video_fraction: float = attrs.field(validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    #: Frames per clip (1 + 4k); unused when ``video_fraction`` is 0.
    num_frames: int = attrs.field(default=17, validator=_frames)
    #: Square crop size in pixels (a multiple of 8).
    resolution: int = attrs.field(default=256, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class STVAETrainingSchedule:
    """Stages run in order (``stage_at(step)``), with one set of loss weights."""

    stages: tuple[TrainingStage, ...] = attrs.field(converter=tuple, validator=attrs.validators.min_len(1))
    losses: LossWeights = attrs.field(factory=LossWeights)

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def stage_at(self, step: int) -> TrainingStage:
        """The stage that global ``step`` (0-based) falls in; the last stage after the end."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        for stage in self.stages:
            if step < stage.steps:
                return stage
            step -= stage.steps
        return self.stages[-1]


#: The paper's order: images first, then images and videos jointly. The paper gives the order
#: only; step counts, clip length and resolution here are our defaults.
PAPER_SCHEDULE = STVAETrainingSchedule(
    stages=(
        TrainingStage(name="images", steps=100_000, video_fraction=0.0, num_frames=1, resolution=256),
        TrainingStage(name="images+videos", steps=100_000, video_fraction=0.5, num_frames=17, resolution=256),
    )
)

"""Building blocks of the ST-VAE: causal 3D convolutions, resnets, per-frame resampling, spatial norm.

Every tensor is ``(B, C, T, H, W)``. Causality: the output at frame ``t`` depends only on input
frames ``<= t``, because convolutions pad time by repeating the first frame and temporal
down-sampling keeps the first frame on its own and averages the following pairs.

Parameter names follow the authors' ``stvae.pt`` (``conv.weight`` inside causal convs,
``norm_layer``/``conv_y``/``conv_b`` in spatial norms, ``downsamplers.0``/``upsamplers.0``),
so the official weights load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# pure functions


def pad_time_causal(x: Tensor, frames: int) -> Tensor:
    """``x`` with its first frame repeated ``frames`` times in front: ``(B, C, T + frames, H, W)``."""
    if frames == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)


def halve_time_keep_first(x: Tensor) -> Tensor:
    """Average neighbouring frame pairs, keeping frame 0 alone when ``T`` is odd.

    ``(B, C, T, H, W) -> (B, C, 1 + (T - 1) // 2, H, W)`` for odd ``T`` (``T // 2`` for even ``T``).
    """
    first, rest = (x[:, :, :1], x[:, :, 1:]) if x.shape[2] % 2 else (x[:, :, :0], x)
    pairs = rest.unflatten(2, (rest.shape[2] // 2, 2)).mean(dim=3)
    return torch.cat([first, pairs], dim=2)


def double_time_keep_first(x: Tensor) -> Tensor:
    """Repeat every frame but the first twice: ``(B, C, T, H, W) -> (B, C, 2T - 1, H, W)``."""
    return torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(2, dim=2)], dim=2)


def resize_latent_like(z: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Nearest-neighbour resize of latents ``z`` to ``size = (T, H, W)`` for spatial norm.

    For odd ``T > 1`` frame 0 and the remaining frames are resized separately, so the first
    latent frame (which encodes only the first pixel frame) conditions only that frame.
    """
    frames, height, width = size
    if frames > 1 and frames % 2 == 1:
        first = F.interpolate(z[:, :, :1], size=(1, height, width))
        rest = F.interpolate(z[:, :, 1:], size=(frames - 1, height, width))
        return torch.cat([first, rest], dim=2)
    return F.interpolate(z, size=size)


def per_frame(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a 2D ``module`` to every frame: ``(B, C, T, H, W) -> (B, C', T, H', W')``."""
    batch, frames = x.shape[0], x.shape[2]
    y = module(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (batch, frames)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# modules


class CausalConv3d(nn.Module):
    """3D convolution (stride 1) that sees only the current and past frames.

    Time is padded with ``kernel_size - 1`` copies of the first frame, height and width with
    ``kernel_size // 2`` zeros, so ``(B, C, T, H, W) -> (B, C', T, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.time_pad = kernel_size - 1
        space_pad = kernel_size // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=(0, space_pad, space_pad))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] == 1 and self.time_pad:
            # One frame padded by copies of itself: the time taps see the same frame, so their
            # weights add up. A 2D convolution with the summed kernel gives the same result at
            # a third of the cost (images are the common case).
            weight = self.conv.weight.sum(dim=2)
            y = F.conv2d(x[:, :, 0], weight, self.conv.bias, padding=self.conv.padding[1:])
            return y.unsqueeze(2)
        return self.conv(pad_time_causal(x, self.time_pad))


class SpatialNorm3D(nn.Module):
    """Group norm whose scale and shift come from the latents: ``norm(f) * conv_y(z) + conv_b(z)``."""

    def __init__(self, channels: int, latent_channels: int, *, groups: int, eps: float):
        super().__init__()
        self.norm_layer = nn.GroupNorm(groups, channels, eps=eps)
        self.conv_y = CausalConv3d(latent_channels, channels, kernel_size=1)
        self.conv_b = CausalConv3d(latent_channels, channels, kernel_size=1)

    def forward(self, f: Tensor, z: Tensor) -> Tensor:
        """``f``: features ``(B, C, T, H, W)``; ``z``: latents ``(B, Z, T', h, w)``, resized to ``f``."""
        z = resize_latent_like(z, tuple(f.shape[2:]))
        return self.norm_layer(f) * self.conv_y(z) + self.conv_b(z)


class ResnetBlock3D(nn.Module):
    """``x + conv2(act(norm2(conv1(act(norm1(x))))))`` with causal convs and a 1x1x1 shortcut.

    With ``latent_channels`` set (decoder) both norms are spatial norms conditioned on the latents.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, groups: int, eps: float, latent_channels: int | None = None
    ):
        super().__init__()
        if latent_channels is None:
            self.norm1: nn.Module = nn.GroupNorm(groups, in_channels, eps=eps)
            self.norm2: nn.Module = nn.GroupNorm(groups, out_channels, eps=eps)
        else:
            self.norm1 = SpatialNorm3D(in_channels, latent_channels, groups=groups, eps=eps)
            self.norm2 = SpatialNorm3D(out_channels, latent_channels, groups=groups, eps=eps)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def _norm(self, norm: nn.Module, x: Tensor, z: Tensor | None) -> Tensor:
        return norm(x) if z is None else norm(x, z)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, z)))
        h = self.conv2(F.silu(self._norm(self.norm2, h, z)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class Downsample(nn.Module):
    """Halve height and width per frame (stride-2 3x3 conv after padding right and bottom by one).

    With ``compress_time`` time is halved first, keeping frame 0 (``halve_time_keep_first``).
    """

    def __init__(self, channels: int, *, compress_time: bool):
        super().__init__()
        self.compress_time = compress_time
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.compress_time:
            x = halve_time_keep_first(x)
        return per_frame(self.conv, F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double height and width per frame (nearest, then a 3x3 conv).

    With ``compress_time`` every frame but the first is also repeated in time (``2T - 1`` frames).
    """

    def __init__(self, channels: int, *, compress_time: bool):
        super().__init__()
        self.compress_time = compress_time
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.compress_time:
            x = double_time_keep_first(x)
        x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        return per_frame(self.conv, x)


def _resnets(
    in_channels: int, out_channels: int, count: int, *, groups: int, eps: float, latent_channels: int | None
) -> nn.ModuleList:
    return nn.ModuleList(
        ResnetBlock3D(
            in_channels if i == 0 else out_channels, out_channels, groups=groups, eps=eps,
            latent_channels=latent_channels,
        )
        for i in range(count)
    )


class DownBlock3D(nn.Module):
    """An encoder stage: resnets, then (except in the last stage) a ``Downsample``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_layers: int, groups: int, eps: float,
        downsample: bool, compress_time: bool,
    ):
        super().__init__()
        self.resnets = _resnets(in_channels, out_channels, num_layers, groups=groups, eps=eps, latent_channels=None)
        # A one-element list, as in the official checkpoint names (``downsamplers.0.conv``).
        self.downsamplers = (
            nn.ModuleList([Downsample(out_channels, compress_time=compress_time)]) if downsample else None
        )

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for downsampler in self.downsamplers or ():
            x = downsampler(x)
        return x


class MidBlock3D(nn.Module):
    """Two resnets at the lowest resolution (no attention); spatial norms in the decoder."""

    def __init__(self, channels: int, *, groups: int, eps: float, latent_channels: int | None = None):
        super().__init__()
        self.resnets = _resnets(channels, channels, 2, groups=groups, eps=eps, latent_channels=latent_channels)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x, z)
        return x


class UpBlock3D(nn.Module):
    """A decoder stage: resnets with spatial norm, then (except in the last stage) an ``Upsample``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_layers: int, groups: int, eps: float,
        latent_channels: int, upsample: bool, compress_time: bool,
    ):
        super().__init__()
        self.resnets = _resnets(
            in_channels, out_channels, num_layers, groups=groups, eps=eps, latent_channels=latent_channels
        )
        self.upsamplers = nn.ModuleList([Upsample(out_channels, compress_time=compress_time)]) if upsample else None

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x, z)
        for upsampler in self.upsamplers or ():
            x = upsampler(x)
        return x

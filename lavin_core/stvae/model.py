"""The ST-VAE: a causal 3D VAE (CogVideoX-style) that maps pixel clips to 4x8x8-compressed latents.

    pixels (B, 3, 1 + 4k, H, W) --encoder--> moments (B, 32, 1 + k, H/8, W/8) --> posterior
    latents (B, 16, 1 + k, H/8, W/8) --decoder (spatial norm on the latents)--> pixels

The encoder halves time in its first two stages, the decoder doubles it in its first two (deepest)
stages; frame 0 is always handled on its own, so an image is a one-frame clip.

Causality: every convolution and resampling looks only at the current and earlier frames. The
group norms, as in the authors' network (and CogVideoX), pool their statistics over all frames
of a clip, so later frames reach earlier outputs through those statistics only.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lavin_core.checkpoint import PretrainedMixin
from lavin_core.interfaces import Encoder
from lavin_core.stvae.config import STVAEConfig, get_preset
from lavin_core.stvae.copy_gate import CopyGate
from lavin_core.stvae.guide import GuideBranch, check_guide
from lavin_core.stvae.latent_noise import noisy_latents
from lavin_core.stvae.layers import CausalConv3d, DownBlock3D, MidBlock3D, SpatialNorm3D, UpBlock3D
from lavin_core.stvae.posterior import DiagonalGaussian
from lavin_core.stvae.tiling import TilingConfig, tiled_decode, tiled_encode_moments


class Encoder3D(nn.Module):
    """Pixels ``(B, 3, T, H, W)`` to posterior moments ``(B, 2 * latent_channels, T', h, w)``."""

    def __init__(self, config: STVAEConfig):
        super().__init__()
        channels, groups, eps = config.block_out_channels, config.norm_num_groups, config.norm_eps
        self.conv_in = CausalConv3d(config.in_channels, channels[0])
        self.down_blocks = nn.ModuleList(
            DownBlock3D(
                channels[max(i - 1, 0)], channels[i], num_layers=config.layers_per_block, groups=groups, eps=eps,
                downsample=i < len(channels) - 1, compress_time=i < config.temporal_levels,
            )
            for i in range(len(channels))
        )
        self.mid_block = MidBlock3D(channels[-1], groups=groups, eps=eps)
        self.norm_out = nn.GroupNorm(groups, channels[-1], eps=eps)
        self.conv_out = CausalConv3d(channels[-1], 2 * config.latent_channels)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.conv_in(pixels)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder3D(nn.Module):
    """Raw latents ``(B, latent_channels, T', h, w)`` to pixels ``(B, 3, T, H, W)`` (not clamped).

    With ``config.query_guide`` it also takes guide pixels ``(B, 3, T, H, W)`` (the query, see
    ``lavin_core.stvae.guide``), added at the input of every stage and before the output layers;
    with ``config.query_copy`` too, its output is blended with the guide's pixels by a copy gate
    (``lavin_core.stvae.copy_gate``).
    """

    def __init__(self, config: STVAEConfig):
        super().__init__()
        channels = config.block_out_channels[::-1]
        groups, eps, latent = config.norm_num_groups, config.norm_eps, config.latent_channels
        self.conv_in = CausalConv3d(latent, channels[0])
        self.mid_block = MidBlock3D(channels[0], groups=groups, eps=eps, latent_channels=latent)
        self.up_blocks = nn.ModuleList(
            UpBlock3D(
                channels[max(i - 1, 0)], channels[i], num_layers=config.layers_per_block + 1, groups=groups,
                eps=eps, latent_channels=latent, upsample=i < len(channels) - 1,
                compress_time=i < config.temporal_levels,
            )
            for i in range(len(channels))
        )
        self.norm_out = SpatialNorm3D(channels[-1], latent, groups=groups, eps=eps)
        self.conv_out = CausalConv3d(channels[-1], config.in_channels)
        self.guide: GuideBranch | None = None
        if config.query_guide:
            # stage i's input lies at level (stages - 1 - i): 1 / 2 ** level of the output size
            stages = len(channels)
            targets = [(stages - 1 - i, channels[max(i - 1, 0)]) for i in range(stages)] + [(0, channels[-1])]
            self.guide = GuideBranch(config.in_channels, config.block_out_channels, tuple(targets))
        self.copy: CopyGate | None = None
        if config.query_copy:
            self.copy = CopyGate(channels[-1], config.block_out_channels[0], config.in_channels)

    def forward(self, z: Tensor, guide: Tensor | None = None) -> Tensor:
        features = self.guide.features(guide.to(z.dtype)) if self.guide is not None and guide is not None else None
        inject = self.guide.inject if features is not None else (lambda index, x, _: x)
        x = self.mid_block(self.conv_in(z), z)
        for index, block in enumerate(self.up_blocks):
            x = block(inject(index, x, features), z)
        x = F.silu(self.norm_out(inject(len(self.up_blocks), x, features), z))
        decoded = self.conv_out(x)
        if self.copy is None or features is None:
            return decoded
        return self.copy(x, features[0], decoded, guide)


class STVAE(PretrainedMixin, Encoder):
    """The spatio-temporal VAE of LaVin-DiT, an ``Encoder``.

    ``STVAE(config)``, ``STVAE.from_preset("lavin-tiny")``, ``STVAE.from_pretrained(folder)``;
    the authors' ``stvae.pt`` loads with ``lavin_core.official.load_vae``.
    """

    config_class = STVAEConfig
    get_preset = staticmethod(get_preset)

    def __init__(self, config: STVAEConfig):
        super().__init__()
        if not isinstance(config, STVAEConfig):
            raise TypeError(f"config must be an STVAEConfig, got {type(config).__name__}")
        self.config = config
        self.temporal_compression = config.temporal_compression
        self.spatial_compression = config.spatial_compression
        self.latent_channels = config.latent_channels
        self.encoder = Encoder3D(config)
        self.decoder = Decoder3D(config)
        self.tiling: TilingConfig | None = None

    @property
    def takes_guide(self) -> bool:
        """Whether ``decode`` takes the query's pixels as ``guide`` (``config.query_guide``)."""
        return self.decoder.guide is not None

    def with_query_guide(self) -> "STVAE":
        """A copy of this ST-VAE with a query-guided decoder whose guide branch starts at zero: it
        decodes exactly as this one until the branch is trained (``lavin_core.stvae.guide``)."""
        if self.takes_guide:
            raise ValueError("this ST-VAE already has a query-guided decoder")
        return self._extended(query_guide=True)

    def with_copy_gate(self) -> "STVAE":
        """A copy of this ST-VAE whose decoder has a copy gate (``lavin_core.stvae.copy_gate``), and a
        query guide if it had none, both starting at zero: it decodes exactly as this one until trained."""
        if self.config.query_copy:
            raise ValueError("this ST-VAE's decoder already has a copy gate")
        return self._extended(query_guide=True, query_copy=True)

    def _extended(self, **flags: bool) -> "STVAE":
        """This ST-VAE with ``flags`` set in its config, its weights, and every added module at zero."""
        new = STVAE(attrs.evolve(self.config, **flags)).to(next(self.parameters()))
        added = tuple(f"decoder.{name}." for name in ("guide", "copy") if getattr(new.decoder, name) is not None
                      and getattr(self.decoder, name) is None)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not name.startswith(added) for name in missing):
            raise ValueError(f"cannot extend this ST-VAE's decoder: missing {missing}, unexpected {unexpected}")
        for name in added:
            getattr(new.decoder, name.split(".")[1]).zero_()
        return new

    # -- tiling ---------------------------------------------------------------------------------

    def enable_tiling(self, config: TilingConfig | None = None) -> None:
        """Encode and decode inputs larger than one tile tile by tile (see ``lavin_core.stvae.tiling``)."""
        config = config or TilingConfig()
        config.check(self.spatial_compression)
        self.tiling = config

    def disable_tiling(self) -> None:
        self.tiling = None

    # -- raw latents ----------------------------------------------------------------------------

    def posterior(self, pixels: Tensor) -> DiagonalGaussian:
        """The posterior over raw latents for ``pixels`` ``(B, 3, 1 + 4k, H, W)`` in [-1, 1]."""
        self.latent_shape(self._check_5d(pixels, "pixels").shape)
        pixels = pixels.to(self.encoder.conv_in.conv.weight.dtype)
        if self.tiling is None:
            return DiagonalGaussian.from_moments(self.encoder(pixels))
        moments = tiled_encode_moments(
            self.encoder, pixels, self.tiling,
            spatial_compression=self.spatial_compression, temporal_compression=self.temporal_compression,
        )
        return DiagonalGaussian.from_moments(moments)

    def decode_raw(self, z: Tensor, *, guide: Tensor | None = None) -> Tensor:
        """The decoder's output (not clamped) for raw latents ``z`` ``(B, C, T', h, w)``; ``guide``:
        see ``decode``."""
        self._check_5d(z, "latents")
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must have {self.latent_channels} channels, got shape {tuple(z.shape)}")
        z = z.to(self.decoder.conv_in.conv.weight.dtype)
        if guide is not None:
            if not self.takes_guide:
                raise ValueError("this ST-VAE's decoder takes no guide (config.query_guide is false); decode without guide=")
            check_guide(guide, z, self.spatial_compression, self.temporal_compression)
            if self.tiling is not None:
                raise ValueError("tiled decoding takes no guide; call disable_tiling() or decode without guide=")
            return self.decoder(z, guide)
        if self.tiling is None:
            return self.decoder(z)
        return tiled_decode(
            self.decoder, z, self.tiling,
            spatial_compression=self.spatial_compression, temporal_compression=self.temporal_compression,
        )

    def normalize(self, raw: Tensor) -> Tensor:
        """``(raw - latent_shift) * latent_scale``: the latents the diffusion model sees."""
        return (raw - self.config.latent_shift) * self.config.latent_scale

    def denormalize(self, latents: Tensor) -> Tensor:
        """The inverse of ``normalize``."""
        return latents / self.config.latent_scale + self.config.latent_shift

    # -- the Encoder interface ------------------------------------------------------------------

    def encode(self, pixels: Tensor, *, generator: torch.Generator | None = None, pad: bool = False) -> Tensor:
        """Normalized latents ``(B, C, 1 + k, H/8, W/8)`` of ``pixels`` ``(B, 3, 1 + 4k, H, W)`` in [-1, 1].

        The posterior mean, or a sample drawn with ``generator`` when one is given. ``pad=True``
        accepts any frame count and size, repeating the last frame and the border pixels up to
        ``1 + 4k`` frames and multiples of 8; pass the original ``(T, H, W)`` as ``decode``'s
        ``output_size`` to crop the padding away again.
        """
        if pad:
            pixels = self.pad_pixels(self._check_5d(pixels, "pixels"))
        posterior = self.posterior(pixels)
        raw = posterior.mean if generator is None else posterior.sample(generator)
        return self.normalize(raw)

    def decode(self, latents: Tensor, *, output_size: tuple[int, int, int] | None = None,
               guide: Tensor | None = None) -> Tensor:
        """Pixels ``(B, 3, T, H, W)`` in [-1, 1] for normalized ``latents``; cropped to ``output_size = (T, H, W)``.

        ``guide``: with a query-guided decoder (``takes_guide``), the query's pixels in the
        answer's shape ``(B, 3, T, H, W)`` (``lavin_core.stvae.guide.guide_frames``); without
        one the decoder works from the latents alone.
        """
        pixels = self.decode_raw(self.denormalize(latents), guide=guide).clamp(-1.0, 1.0)
        if output_size is not None:
            frames, height, width = output_size
            if frames > pixels.shape[2] or height > pixels.shape[3] or width > pixels.shape[4]:
                raise ValueError(
                    f"output_size {tuple(output_size)} is larger than the decoded {tuple(pixels.shape[2:])}; "
                    f"pass the (T, H, W) of the pixels given to encode(pad=True)"
                )
            pixels = pixels[:, :, :frames, :height, :width]
        return pixels

    def forward(self, pixels: Tensor, *, generator: torch.Generator | None = None,
                guide: Tensor | None = None, latent_noise: float = 0.0,
                latents: Tensor | None = None) -> tuple[Tensor, DiagonalGaussian]:
        """Training pass: ``(reconstruction, posterior)``.

        Decodes a posterior sample (drawn from ``generator``, or the global RNG) in training mode
        and when a ``generator`` is given, otherwise the mean, guided by ``guide`` when given (see
        ``decode``). ``latent_noise`` > 0 adds noise of up to that fraction of the latents' RMS
        before decoding (``latent_noise.noisy_latents``: a decoder for a denoiser's estimates).
        ``latents``: normalized latents to decode instead of the posterior's, e.g. a J-DiT's
        estimates of ``pixels``' (``lavin_core.train.estimates``); the posterior of ``pixels``
        is still returned. The reconstruction is the raw decoder output (not clamped), so losses
        keep their gradients.
        """
        posterior = self.posterior(pixels)
        if latents is not None:
            return self.decode_raw(self.denormalize(latents.to(pixels.dtype)), guide=guide), posterior
        z = posterior.sample(generator) if self.training or generator is not None else posterior.mean
        return self.decode_raw(noisy_latents(z, latent_noise, generator), guide=guide), posterior

    # -- helpers --------------------------------------------------------------------------------

    def pad_pixels(self, pixels: Tensor) -> Tensor:
        """``pixels`` padded at the end (last frame, border pixels) to ``1 + 4k`` frames and multiples of 8."""
        tc, sc = self.temporal_compression, self.spatial_compression
        frames, height, width = pixels.shape[2:]
        extra_t = -(frames - 1) % tc
        extra_h, extra_w = -height % sc, -width % sc
        if extra_t:
            pixels = torch.cat([pixels, pixels[:, :, -1:].expand(-1, -1, extra_t, -1, -1)], dim=2)
        if extra_h or extra_w:
            pixels = F.pad(pixels, (0, extra_w, 0, extra_h, 0, 0), mode="replicate")
        return pixels

    @staticmethod
    def _check_5d(tensor: Tensor, what: str) -> Tensor:
        if not isinstance(tensor, Tensor) or tensor.ndim != 5:
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"{what} must be a 5D tensor (B, C, T, H, W), got {shape}; add a batch axis with x[None]")
        return tensor

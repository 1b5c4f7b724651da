"""ST-VAE configuration and presets.

The architecture is the authors' CogVideoX-style causal 3D VAE: ``len(block_out_channels)``
stages, each but the last halving height and width, the first ``log2(temporal_compression)``
also halving time (keeping the first frame). With four stages that is 8x spatial and 4x temporal
compression into ``latent_channels`` channels.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from lavin_core.presets import lookup_preset


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _channels(instance: object, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if len(value) < 1 or any(c <= 0 for c in value):
        raise ValueError(f"block_out_channels must be one or more positive ints, got {value}")


@attrs.frozen(kw_only=True)
class STVAEConfig:
    """Shape of an ST-VAE. ``STVAEConfig()`` is the official one (the ``"lavin-3.4b"`` preset).

    The decoder mirrors the encoder with ``layers_per_block + 1`` resnets per stage, as the
    authors' code does. Latents are normalized as ``(mean - latent_shift) * latent_scale``.
    """

    in_channels: int = attrs.field(default=3, validator=_positive)
    block_out_channels: tuple[int, ...] = attrs.field(
        default=(128, 256, 256, 512), converter=tuple, validator=_channels
    )
    latent_channels: int = attrs.field(default=16, validator=_positive)
    layers_per_block: int = attrs.field(default=3, validator=_positive)
    norm_num_groups: int = attrs.field(default=32, validator=_positive)
    norm_eps: float = attrs.field(default=1e-6, validator=attrs.validators.gt(0.0))
    temporal_compression: int = attrs.field(default=4, validator=_positive)
    latent_shift: float = 0.032470703125
    latent_scale: float = attrs.field(default=1.08936170213, validator=attrs.validators.gt(0.0))
    #: The decoder also sees the query's pixels (``lavin_core.stvae.guide``); the encoder and the
    #: latents are unchanged. Off in the authors' network.
    query_guide: bool = False
    #: The query-guided decoder also has a copy gate (``lavin_core.stvae.copy_gate``): per pixel it
    #: takes the query's pixels where the answer is the query. Needs ``query_guide``.
    query_copy: bool = False

    def __attrs_post_init__(self) -> None:
        if self.query_copy and not self.query_guide:
            raise ValueError("query_copy=True needs query_guide=True (the copy gate blends in the guide's pixels); "
                             "set both or neither")
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise ValueError(
                    f"every block_out_channels entry must be divisible by norm_num_groups="
                    f"{self.norm_num_groups}, got {self.block_out_channels}"
                )
        levels = math.log2(self.temporal_compression)
        if levels != int(levels) or levels > len(self.block_out_channels) - 1:
            raise ValueError(
                f"temporal_compression must be a power of two of at most "
                f"{2 ** (len(self.block_out_channels) - 1)} (one halving per downsampling stage), "
                f"got {self.temporal_compression}"
            )

    @property
    def spatial_compression(self) -> int:
        """Height and width shrink by this factor: one halving per stage but the last."""
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def temporal_levels(self) -> int:
        """How many stages halve time (the first ones in the encoder, the deepest in the decoder)."""
        return int(math.log2(self.temporal_compression))


#: Named configurations. ``lavin-3.4b`` is the released ``stvae.pt`` (the ST-VAE of the authors'
#: 3.4B model); ``lavin-tiny`` trains on a CPU.
PRESETS: dict[str, STVAEConfig] = {
    "lavin-3.4b": STVAEConfig(),
    "lavin-tiny": STVAEConfig(
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        latent_shift=0.0,
        latent_scale=1.0,
    ),
}
#: lavin-tiny with the query-guided decoder (``scripts/add_query_guide.py`` makes one from a trained lavin-tiny).
PRESETS["lavin-tiny-guided"] = attrs.evolve(PRESETS["lavin-tiny"], query_guide=True)
#: ... and its copy gate (``scripts/add_query_guide.py --copy-gate``).
PRESETS["lavin-tiny-copy"] = attrs.evolve(PRESETS["lavin-tiny-guided"], query_copy=True)


#: Names of earlier releases -> today's.
RENAMED = {"official": "lavin-3.4b"}


def get_preset(name: str, **overrides: Any) -> STVAEConfig:
    """The preset called ``name`` with some fields replaced; ``UnknownNameError`` lists the known ones."""
    return lookup_preset("ST-VAE preset", PRESETS, name, overrides, RENAMED)

"""``JDiTConfig`` and the named presets.

The official 3.4B network (``lavin-3.4b``) is hidden 2304, depth 22, 32 query heads sharing 8
key/value heads (head_dim 72, 24 RoPE dims per axis), SwiGLU width 6144. The smaller presets keep
its proportions with head_dim 48 (16 RoPE dims per axis) so that they train on a CPU.
"""

from __future__ import annotations

import warnings
from typing import Any

import attrs
from attrs import validators as v

from lavin_core.jdit.attention import BACKENDS
from lavin_core.presets import lookup_preset

TIME_CONVENTIONS = ("lavin", "official")


def swiglu_width(hidden_size: int) -> int:
    """The official SwiGLU width: two thirds of 4x hidden, rounded down to a multiple of 64."""
    return int(4 * hidden_size * 2 / 3 / 64) * 64


def _check_heads(config: JDiTConfig, attribute: attrs.Attribute, num_heads: int) -> None:
    if config.hidden_size % num_heads:
        raise ValueError(f"hidden_size {config.hidden_size} is not divisible by num_heads {num_heads}")
    head_dim = config.hidden_size // num_heads
    if head_dim % 6:
        raise ValueError(
            f"head_dim = hidden_size / num_heads = {head_dim} must be a multiple of 6 "
            "(3 RoPE axes, each rotated half-wise); e.g. 48 or 72"
        )


def _check_kv_heads(config: JDiTConfig, attribute: attrs.Attribute, num_kv_heads: int) -> None:
    if config.num_heads % num_kv_heads:
        raise ValueError(
            f"num_kv_heads {num_kv_heads} must divide num_heads {config.num_heads} "
            f"(grouped-query attention)"
        )


def _check_hidden(config: JDiTConfig, attribute: attrs.Attribute, hidden_size: int) -> None:
    if swiglu_width(hidden_size) <= 0:
        raise ValueError(f"hidden_size {hidden_size} is too small for the SwiGLU width rule; use at least 48")


@attrs.frozen(kw_only=True)
class JDiTConfig:
    """Architecture and run-time options of a ``JDiT``.

    ``time_convention``: ``"lavin"`` (t = 0 data, v = noise - data) or ``"official"`` for weights
    trained with the authors' SiT convention; the model then returns ``-v_net(z, 1 - t)`` so that
    its output is always in LaVin's convention.
    """

    hidden_size: int = attrs.field(validator=[v.instance_of(int), v.gt(0), _check_hidden])
    depth: int = attrs.field(validator=[v.instance_of(int), v.gt(0)])
    num_heads: int = attrs.field(validator=[v.instance_of(int), v.gt(0), _check_heads])
    num_kv_heads: int = attrs.field(validator=[v.instance_of(int), v.gt(0), _check_kv_heads])
    in_channels: int = attrs.field(default=16, validator=[v.instance_of(int), v.gt(0)])
    patch_size: int = attrs.field(default=2, validator=[v.instance_of(int), v.gt(0)])
    norm_eps: float = attrs.field(default=1e-6, converter=float, validator=v.gt(0))
    rope_base: float = attrs.field(default=10000.0, converter=float, validator=v.gt(0))
    time_convention: str = attrs.field(default="lavin", validator=v.in_(TIME_CONVENTIONS))
    attention_backend: str = attrs.field(default="sdpa", validator=v.in_(BACKENDS))
    gradient_checkpointing: bool = attrs.field(default=False, validator=v.instance_of(bool))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_width(self) -> int:
        return swiglu_width(self.hidden_size)

    @property
    def patch_dim(self) -> int:
        """Length of one flattened ``(pH, pW, C)`` patch."""
        return self.patch_size * self.patch_size * self.in_channels


PRESETS: dict[str, JDiTConfig] = {
    # ~4.6M parameters: trains on a laptop CPU.
    "lavin-tiny": JDiTConfig(hidden_size=192, depth=4, num_heads=4, num_kv_heads=2),
    # ~14.9M parameters (28 MB in fp16): measured for the in-context recipe (configs/lavin-tiny-icl/README.md),
    # 3.4x the lavin-tiny step on 2 CPU cores; that recipe fine-tunes lavin-tiny instead.
    "lavin-tiny-icl": JDiTConfig(hidden_size=288, depth=6, num_heads=6, num_kv_heads=2),
    # ~8.9M parameters: lavin-tiny with twice the blocks, grown from trained lavin-tiny weights
    # (scripts/grow_jdit.py, lavin_core.jdit.grow) for the in-context recipe's fourth run.
    "lavin-tiny-deep": JDiTConfig(hidden_size=192, depth=8, num_heads=4, num_kv_heads=2),
    # ~118M parameters.
    "lavin-small": JDiTConfig(hidden_size=576, depth=12, num_heads=12, num_kv_heads=4),
    # ~207M parameters: the sharded-training demonstration on a CPU (configs/lavin-medium-fsdp.toml).
    "lavin-medium": JDiTConfig(hidden_size=768, depth=12, num_heads=16, num_kv_heads=4),
    # ~700M parameters.
    "lavin-base": JDiTConfig(hidden_size=1152, depth=18, num_heads=16, num_kv_heads=4),
    # The authors' released network (LaVinDiT_3B_2): 3,398,976,064 parameters.
    "lavin-3.4b": JDiTConfig(hidden_size=2304, depth=22, num_heads=32, num_kv_heads=8),
}


#: Names of earlier releases -> today's.
RENAMED = {"official": "lavin-3.4b"}


def get_preset(name: str, **overrides: Any) -> JDiTConfig:
    """The preset ``name`` with some fields replaced, e.g. ``get_preset("lavin-tiny", depth=2)``."""
    return lookup_preset("J-DiT preset", PRESETS, name, overrides, RENAMED)


def preset(name: str, **overrides: Any) -> JDiTConfig:
    """Deprecated name of ``get_preset`` (kept for one release)."""
    warnings.warn("lavin_core.jdit.preset is now get_preset; the old name goes away in the next release",
                  DeprecationWarning, stacklevel=2)
    return get_preset(name, **overrides)

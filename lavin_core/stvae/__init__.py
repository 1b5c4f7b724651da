"""The ST-VAE: causal 3D VAE with 4x temporal and 8x spatial compression (LaVin-DiT's encoder)."""

from lavin_core.stvae.config import PRESETS, STVAEConfig, get_preset
from lavin_core.stvae.model import STVAE
from lavin_core.stvae.posterior import DiagonalGaussian
from lavin_core.stvae.tiling import TilingConfig

__all__ = ["PRESETS", "STVAE", "DiagonalGaussian", "STVAEConfig", "TilingConfig", "get_preset"]

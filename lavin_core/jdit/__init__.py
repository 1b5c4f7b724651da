"""The J-DiT denoiser: config and presets, 3D RoPE tables, layers and the model."""

from lavin_core.jdit.config import PRESETS, JDiTConfig, preset
from lavin_core.jdit.model import JDiT

__all__ = ["PRESETS", "JDiT", "JDiTConfig", "preset"]

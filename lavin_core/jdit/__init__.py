"""The J-DiT denoiser: config and presets, 3D RoPE tables, attention, layers and the model."""

from lavin_core.jdit.config import PRESETS, JDiTConfig, get_preset, preset
from lavin_core.jdit.model import JDiT

__all__ = ["PRESETS", "JDiT", "JDiTConfig", "get_preset", "preset"]

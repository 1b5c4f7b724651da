"""Loaders for the authors' released LaVin-DiT weights, returning models in LaVin's conventions.

``load_dit`` reads ``lavin_dit.safetensors`` (the J-DiT); ``load_vae`` reads ``stvae.pt`` (the
ST-VAE, ``lavin_core.official.vae``, imported on first use).
"""

from typing import Any

from lavin_core.official.dit import load_dit

__all__ = ["load_dit", "load_vae"]


def __getattr__(name: str) -> Any:
    if name == "load_vae":
        from lavin_core.official.vae import load_vae

        return load_vae
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

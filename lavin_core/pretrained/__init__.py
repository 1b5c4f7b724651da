"""Pretrained weights: shipped model folders, and the one resolver behind ``--model``, ``--dit``
and ``--vae``.

- ``folders``: named models inside the package (``lavin-tiny``) and model folders in the same
  layout (``model_index.json`` + ``dit/`` + ``vae/``).
- ``loading``: a spec (a module, ``random:PRESET``, a ``save_pretrained`` folder, a model
  name or folder, the authors' files) -> a J-DiT or an ST-VAE.

Reading and writing one ``save_pretrained`` folder (``config.json`` + ``model.safetensors``) is
``lavin_core.checkpoint``; the authors' own file layouts are ``lavin_core.official``.
"""

from lavin_core.pretrained.folders import (
    DEFAULT_MODEL,
    MODELS,
    ModelFolder,
    get_model,
    is_model_folder,
    model_part,
    shipped_path,
    weights_present,
)
from lavin_core.pretrained.loading import RANDOM_PREFIX, load_denoiser, load_encoder

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "RANDOM_PREFIX",
    "ModelFolder",
    "get_model",
    "is_model_folder",
    "load_denoiser",
    "load_encoder",
    "model_part",
    "shipped_path",
    "weights_present",
]

"""The authors' ST-VAE checkpoint (``stvae.pt``) as an ``STVAE``.

``stvae.pt`` is a torch file whose ``state_dict`` key holds the tensors. It is read with
``torch.load(weights_only=True)``: a file that needs anything beyond tensors and plain containers
to unpickle is refused, never executed. The same tensors as ``.safetensors`` load too. Our module
names are the official tensor names, so the state dict loads as is, strictly.
"""

from __future__ import annotations

import torch

from lavin_core.checkpoint import load_state_dict_strict
from lavin_core.official.torchfile import read_weights_file
from lavin_core.stvae import PRESETS, STVAE, STVAEConfig


def load_vae(
    path: str,
    config: STVAEConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> STVAE:
    """An ``STVAE`` in eval mode with the official weights at ``path``: ``.pt`` or ``.safetensors``, local or fsspec.

    ``config`` gives the architecture (default: the ``official`` preset, the released network,
    with its latent shift and scale). The model is built on the meta device and takes the file's
    tensors on ``device``, cast to ``dtype`` if given (else float32). Any missing, unexpected or
    mis-shaped tensor raises ``CheckpointError`` naming it.
    """
    config = config or PRESETS["lavin-3.4b"]
    path = str(path)
    state_dict = read_weights_file(path, device=device)
    with torch.device("meta"):
        model = STVAE(config)
    load_state_dict_strict(model, state_dict, source=path, assign=True)
    if dtype is not None:
        model.to(dtype)
    return model.eval()

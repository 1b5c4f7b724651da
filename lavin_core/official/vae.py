"""The authors' ST-VAE checkpoint (``stvae.pt``) as an ``STVAE``.

``stvae.pt`` is a torch file whose ``state_dict`` key holds the tensors. It is read with
``torch.load(weights_only=True)``: a file that needs anything beyond tensors and plain containers
to unpickle is refused, never executed. A local file is memory-mapped (``mmap=True``): tensors
in the dtype asked for share the file's pages, the others are cast one at a time. The same tensors as ``.safetensors`` load too. Our module
names are the official tensor names, so the state dict loads as is, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from lavin_core.checkpoint import load_state_dict_strict, target_dtypes
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
    with torch.device("meta"):
        model = STVAE(config)
    if dtype is not None:
        model.to(dtype)  # on the meta device: each tensor is cast once, as it is read
    dtypes = target_dtypes(model)
    state_dict = _cast(read_weights_file(path, device=device, dtypes=dtypes), dtypes)  # torch files: cast here
    load_state_dict_strict(model, state_dict, source=path, assign=True)
    return model.eval()


def _cast(tensors: dict[str, Tensor], dtypes: Mapping[str, torch.dtype]) -> dict[str, Tensor]:
    """Floating-point tensors in the dtype of ``dtypes`` (the same object where it already is), one at a time."""
    for name, tensor in tensors.items():
        wanted = dtypes.get(name, tensor.dtype)
        if tensor.is_floating_point() and wanted.is_floating_point and tensor.dtype != wanted:
            tensors[name] = tensor.to(wanted)
    return tensors

"""The authors' ST-VAE checkpoint (``stvae.pt``) as an ``STVAE``.

``stvae.pt`` is a torch file whose ``state_dict`` key holds the tensors. It is read with
``torch.load(weights_only=True)``: a file that needs anything beyond tensors and plain containers
to unpickle is refused, never executed. A local file is memory-mapped (``mmap=True``): tensors
in the dtype asked for share the file's pages, the others are cast one at a time. The same tensors as ``.safetensors`` load too. Our module
names are the official tensor names, so the state dict loads as is, strictly.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping

import fsspec
from fsspec.implementations.local import LocalFileSystem
import torch
from torch import Tensor

from lavin_core.checkpoint import load_state_dict_strict, read_safetensors, target_dtypes
from lavin_core.errors import CheckpointError
from lavin_core.stvae import PRESETS, STVAE, STVAEConfig


def _unpickling_reason(err: Exception) -> str:
    """The line of torch's weights-only refusal that names the offending object."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or [type(err).__name__])[0]


def read_torch_state_dict(path: str, *, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The tensors of a torch checkpoint at ``path``: its ``state_dict`` entry, or the file itself if it is one.

    Raises ``CheckpointError`` if the file is missing, is not a torch file, holds pickled objects
    other than tensors and plain containers, or has no name -> tensor mapping.
    """
    try:
        fs, local = fsspec.core.url_to_fs(path)
        if isinstance(fs, LocalFileSystem) and zipfile.is_zipfile(local):
            # Memory-mapped (only torch's zip format can be): nothing is read until used.
            data = torch.load(local, map_location=device, weights_only=True, mmap=True)
        else:
            with fs.open(local, "rb") as f:
                data = torch.load(f, map_location=device, weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"no checkpoint file at {path}") from err
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} was refused: it holds pickled objects other than tensors ({_unpickling_reason(err)}); "
            "only plain tensor checkpoints are loaded, never arbitrary pickles; convert it to safetensors "
            "in a trusted environment"
        ) from err
    except Exception as err:  # torch.load raises many types on a corrupt file
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    state_dict = data.get("state_dict", data) if isinstance(data, Mapping) else data
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise CheckpointError(
            f"{path} holds {type(data).__name__}, not a state dict; expected a dict with a 'state_dict' "
            "entry mapping tensor names to tensors"
        )
    not_tensors = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {', '.join(not_tensors)}")
    return dict(state_dict)


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
    if path.endswith(".safetensors"):
        state_dict = read_safetensors(path, device=device, dtypes=dtypes)
    else:
        state_dict = _cast(read_torch_state_dict(path, device=device), dtypes)
    load_state_dict_strict(model, state_dict, source=path, assign=True)
    return model.eval()


def _cast(tensors: dict[str, Tensor], dtypes: Mapping[str, torch.dtype]) -> dict[str, Tensor]:
    """Floating-point tensors in the dtype of ``dtypes`` (the same object where it already is), one at a time."""
    for name, tensor in tensors.items():
        wanted = dtypes.get(name, tensor.dtype)
        if tensor.is_floating_point() and wanted.is_floating_point and tensor.dtype != wanted:
            tensors[name] = tensor.to(wanted)
    return tensors

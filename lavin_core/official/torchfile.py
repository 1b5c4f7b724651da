"""Reading a weights file of the authors' kinds: ``.safetensors``, or a torch file (``stvae.pt``)
read with ``torch.load(weights_only=True)`` so that a pickle with code is refused, never run.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping

import fsspec
from fsspec.implementations.local import LocalFileSystem
import torch
from torch import Tensor

from lavin_core.checkpoint import read_safetensors
from lavin_core.devices import check_device
from lavin_core.errors import CheckpointError

#: File endings read as torch files (anything pickled by ``torch.save``).
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


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
    device = check_device(device)
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
    except IsADirectoryError as err:
        raise CheckpointError(f"{path} is a folder, not a torch checkpoint file") from err
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # not objects the safe unpickler refused: bytes that are no pickle
            raise CheckpointError(f"{path} is not a readable torch checkpoint ({_unpickling_reason(err)})") from err
        raise CheckpointError(
            f"{path} was refused, nothing in it was run: it is a pickle with objects other than tensors, "
            f"possibly code ({_unpickling_reason(err)}); "
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




def read_weights_file(path: str, *, device: str | torch.device = "cpu",
                      dtypes: Mapping[str, torch.dtype] | None = None) -> dict[str, Tensor]:
    """The tensors of ``path``: a ``.safetensors`` file (memory-mapped, cast to ``dtypes`` as read), or
    a torch file (``TORCH_SUFFIXES``) read safely."""
    path = str(path)
    if path.endswith(".safetensors"):
        return read_safetensors(path, device=device, dtypes=dtypes)
    if path.endswith(TORCH_SUFFIXES):
        return read_torch_state_dict(path, device=device)
    raise CheckpointError(f"{path}: unknown weights file type; expected .safetensors or a torch file "
                          f"({', '.join(TORCH_SUFFIXES)})")

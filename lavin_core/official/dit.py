"""The authors' J-DiT checkpoint (``lavin_dit.safetensors``) as a ``JDiT``.

Our module names are the official tensor names, so the state dict loads as is: strictly, with
every missing, unexpected or mis-shaped tensor named in a ``CheckpointError``.

Time convention: the authors' network was trained with t = 0 noise, t = 1 data and predicts
data - noise. The loaded model has ``time_convention="official"``, so its ``forward`` returns
``-v_official(z, 1 - t)``: LaVin's convention, like every other ``Denoiser``. The flag lives in
the config, so ``save_pretrained`` / ``JDiT.from_pretrained`` of a loaded (or fine-tuned)
official model keeps it.
"""

from __future__ import annotations

import attrs
import torch

from lavin_core.checkpoint import load_state_dict_strict, target_dtypes
from lavin_core.official.torchfile import read_weights_file
from lavin_core.jdit import PRESETS, JDiT, JDiTConfig


def load_dit(
    path: str,
    config: JDiTConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> JDiT:
    """A ``JDiT`` with the official weights at ``path`` (local path or fsspec URL), in eval mode.

    ``path`` is the authors' ``.safetensors`` file, or the same tensors in a torch file (read with
    ``weights_only=True``: a pickle with code is refused).

    ``config`` gives the architecture (default: the ``lavin-3.4b`` preset, the released
    network); its ``time_convention`` is set to ``"official"``. The model is built on the meta
    device and takes the file's tensors on ``device``, cast to ``dtype`` if given (else float32).
    On the CPU in the file's own dtype (bf16 for the released file) the weights stay in the file's
    memory map: loading reads nothing up front and never holds a second copy.
    """
    config = attrs.evolve(config or PRESETS["lavin-3.4b"], time_convention="official")
    with torch.device("meta"):
        model = JDiT(config)
    if dtype is not None:
        model.to(dtype)  # on the meta device: each tensor is cast once, as it is read
    tensors = read_weights_file(str(path), device=device, dtypes=target_dtypes(model))
    load_state_dict_strict(model, tensors, source=str(path), assign=True)
    return model.eval()

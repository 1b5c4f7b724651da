"""The one resolver behind ``--dit`` / ``--vae`` / ``load_pipeline``: a spec string -> a model.

A spec is a module (used as is), ``random:PRESET``, one of our ``save_pretrained`` folders, a
shipped model name or model folder (its ``dit/`` or ``vae/`` part), or the authors' files.
"""

from __future__ import annotations

import os

import fsspec
import torch
from torch import nn

from lavin_core.devices import check_device
from lavin_core.errors import CheckpointError
from lavin_core.official.torchfile import TORCH_SUFFIXES
from lavin_core.interfaces import Denoiser, Encoder
from lavin_core.pretrained import folders


#: A ``--dit`` / ``--vae`` value of this form builds a randomly initialised model of a preset.
RANDOM_PREFIX = "random:"


def _exists(path: str) -> bool:
    fs, root = fsspec.core.url_to_fs(path)
    return fs.exists(root)


def _missing(kind: str, path: str, official: str) -> CheckpointError:
    return CheckpointError(
        f"no {kind} checkpoint at {path}; pass a folder written by save_pretrained, the authors' "
        f"{official}, or {RANDOM_PREFIX}PRESET for random weights"
    )


def _file_kind(kind: str, path: str, official: str) -> str:
    """``"folder"``, ``"safetensors"`` or ``"torch"`` for an existing ``path``; a one-line error for any other file."""
    fs, root = fsspec.core.url_to_fs(path)
    if fs.isdir(root):
        return "folder"
    if path.endswith(".safetensors"):
        return "safetensors"
    if path.endswith(TORCH_SUFFIXES):
        return "torch"
    raise CheckpointError(
        f"{path} is a file of unknown kind, not a {kind} checkpoint; pass a folder written by save_pretrained, "
        f"the authors' {official} (.safetensors or a torch file {', '.join(TORCH_SUFFIXES)}), or {RANDOM_PREFIX}PRESET"
    )


def _random_model(build, config, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(config)


def load_denoiser(spec: str | Denoiser, *, device="cpu", dtype: torch.dtype | None = None, seed: int = 0) -> Denoiser:
    """A J-DiT from ``spec``: a module (used as is), ``random:PRESET``, one of our checkpoint folders,
    a shipped model name or model folder (its ``dit/``, see ``lavin_core.pretrained``), or the authors'
    ``lavin_dit.safetensors`` (through ``official.load_dit``)."""
    device = check_device(device)
    if isinstance(spec, nn.Module):
        return spec.to(device=device, dtype=dtype)
    from lavin_core.jdit import JDiT, get_preset

    spec = folders.model_part(os.fspath(spec), "dit")
    if spec.startswith(RANDOM_PREFIX):
        model = _random_model(JDiT, get_preset(spec[len(RANDOM_PREFIX):]), seed)
        return model.to(device=device, dtype=dtype).eval()
    if not _exists(spec):
        raise _missing("J-DiT", spec, "lavin_dit.safetensors")
    if _file_kind("J-DiT", spec, "lavin_dit.safetensors") != "folder":
        from lavin_core.official import load_dit

        return load_dit(spec, device=device, dtype=dtype).eval()
    return JDiT.from_pretrained(spec, device=device, dtype=dtype).eval()


def load_encoder(spec: str | Encoder, *, device="cpu", dtype: torch.dtype | None = None, seed: int = 0) -> Encoder:
    """An ST-VAE from ``spec``: a module (used as is), ``random:PRESET``, one of our checkpoint folders,
    a shipped model name or model folder (its ``vae/``), or the authors' ``stvae.pt`` (or its tensors
    as ``.safetensors``, through ``official.load_vae``)."""
    device = check_device(device)
    if isinstance(spec, nn.Module):
        return spec.to(device=device, dtype=dtype)
    from lavin_core.stvae import STVAE, get_preset

    spec = folders.model_part(os.fspath(spec), "vae")
    if spec.startswith(RANDOM_PREFIX):
        model = _random_model(STVAE, get_preset(spec[len(RANDOM_PREFIX):]), seed)
        return model.to(device=device, dtype=dtype).eval()
    if not _exists(spec):
        raise _missing("ST-VAE", spec, "stvae.pt")
    if _file_kind("ST-VAE", spec, "stvae.pt") != "folder":
        from lavin_core.official import load_vae

        return load_vae(spec, device=device, dtype=dtype).eval()
    return STVAE.from_pretrained(spec, device=device, dtype=dtype).eval()

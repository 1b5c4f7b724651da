"""Training checkpoints that never lose work, and the final export.

A checkpoint is the folder ``RUN_DIR/checkpoints/step-00001000/``:

- ``<name>.safetensors`` for each model (the trained model, its EMA, a discriminator), full
  (unsharded) weights written by rank 0;
- ``<name>.pt`` for each optimizer (full state, keyed by parameter name) and ``trainer.pt``
  (step, LR schedulers, stage state), written by rank 0;
- ``rank-00003.pt`` per rank: the RNG states (torch, CUDA, numpy, python) and the data position;
- ``meta.json``: the step and the model section of the config.

Every rank writes into ``.tmp-step-00001000`` and rank 0 renames it once all are done: the rename
is the commit, so a ``kill -9`` at any moment leaves either the complete checkpoint or none
(stale temporary folders are removed on the next start). Only the last ``keep_last`` are kept.
All ranks write into one folder: on several nodes it must be on a shared file system. Because
the weights and optimizer states are saved unsharded, a run may resume on another number of ranks.
Everything is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from lavin_core.checkpoint import check_state_dict, save_pretrained
from lavin_core.errors import CheckpointError
from lavin_core.train.distributed import DistInfo, barrier, broadcast_object

PREFIX = "step-"
TEMP_PREFIX = ".tmp-step-"


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------
# RNG states (plain tensors and ints, so that weights_only loading reads them)


def rng_state(device: torch.device) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------------------------------------
# full state dicts of (possibly sharded or wrapped) models and optimizers

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights of ``model`` on the CPU (complete on rank 0)."""
    return get_model_state_dict(model, options=_FULL)


def _load_options(info: DistInfo, *, strict: bool = True) -> StateDictOptions:
    return StateDictOptions(full_state_dict=True, broadcast_from_rank0=info.is_distributed, strict=strict)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_tensor_file(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


class CheckpointManager:
    """Saves and restores the named models and optimizers of a run under ``RUN_DIR/checkpoints``.

    ``models``: name -> module (DDP-wrapped, FSDP2-sharded or plain); ``optimizers``: name ->
    ``(module, optimizer)`` for the module the optimizer steps.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        keep_last: int,
        info: DistInfo,
        models: Mapping[str, nn.Module],
        optimizers: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]],
    ):
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.folder = Path(run_dir) / "checkpoints"
        self.keep_last, self.info = keep_last, info
        self.models, self.optimizers = dict(models), dict(optimizers)
        if info.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(f"{TEMP_PREFIX}*"):
                shutil.rmtree(stale, ignore_errors=True)
        barrier(info)

    def save(self, step: int, *, trainer_state: Mapping[str, Any], rank_state: Mapping[str, Any],
             meta: Mapping[str, Any]) -> Path:
        """Write the checkpoint of ``step`` atomically; every rank must call it. Returns its folder."""
        final = self.folder / step_dir_name(step)
        temp = self.folder / f"{TEMP_PREFIX}{step:08d}"
        if self.info.is_main:
            shutil.rmtree(temp, ignore_errors=True)
            temp.mkdir(parents=True)
        barrier(self.info)
        # Gathering full state dicts is collective under FSDP2: every rank takes part.
        weights = {name: full_model_state(model) for name, model in self.models.items()}
        optimizers = {name: get_optimizer_state_dict(model, opt, options=_FULL)
                      for name, (model, opt) in self.optimizers.items()}
        if self.info.is_main:
            for name, tensors in weights.items():
                _save_tensor_file(tensors, temp / f"{name}.safetensors")
            for name, state in optimizers.items():
                _torch_save(state, temp / f"{name}.pt")
            _torch_save(dict(trainer_state), temp / "trainer.pt")
            (temp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2))
        _torch_save({"rng": rng_state(self.info.device), **rank_state}, temp / f"rank-{self.info.rank:05d}.pt")
        barrier(self.info)
        if self.info.is_main:
            _fsync_dir(temp)
            if final.exists():  # the same step saved again (e.g. the final save after a periodic one)
                shutil.rmtree(final)
            os.rename(temp, final)
            _fsync_dir(self.folder)
            for old in list_checkpoints(self.folder.parent)[:-self.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.info)
        return final

    def load(self, path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore models, optimizers and this rank's RNG from ``path``; returns (trainer_state, rank_state).

        A checkpoint written for other model shapes raises ``CheckpointError`` naming the tensors.
        """
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise CheckpointError(f"{path} is not a complete training checkpoint (no meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        options = _load_options(self.info)
        for name, model in self.models.items():
            file = path / f"{name}.safetensors"
            problem = None
            tensors: dict[str, torch.Tensor] = {}
            if self.info.is_main:
                tensors = safetensors.torch.load_file(str(file))
                try:
                    check_state_dict(_owner(model), tensors, source=str(file))
                except CheckpointError as err:
                    written = meta.get("model", {})
                    problem = (f"cannot resume from {path}: it was written for model {written}; {err}")
            problem = broadcast_object(problem, self.info)
            if problem:
                raise CheckpointError(problem)
            set_model_state_dict(model, tensors if self.info.is_main or not self.info.is_distributed else {},
                                 options=options)
        for name, (model, opt) in self.optimizers.items():
            state = torch.load(path / f"{name}.pt", weights_only=True) if self.info.is_main else {}
            # Parameters that never received a gradient (e.g. the J-DiT's last conditional-stream
            # projections) have no optimizer state, in the saved run as in this one.
            set_optimizer_state_dict(model, opt, state, options=_load_options(self.info, strict=False))
        trainer_state = torch.load(path / "trainer.pt", weights_only=True)
        rank_file = path / f"rank-{self.info.rank:05d}.pt"
        if not rank_file.is_file():
            # Written with fewer ranks. Weights and optimizer states are full (unsharded) and the
            # data depends only on the step, so the run goes on; only this rank's RNG starts anew.
            written = len(list(path.glob("rank-*.pt")))
            print(f"lavin train: {path} has no RNG state for rank {self.info.rank} (written with {written} ranks); "
                  "continuing with fresh RNG on this rank", file=sys.stderr)
            return trainer_state, {}
        rank_state = torch.load(rank_file, weights_only=True)
        set_rng_state(rank_state.pop("rng"), self.info.device)
        return trainer_state, rank_state


def _owner(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def export_pretrained(model_class: type, config: Any, weights: Mapping[str, torch.Tensor], url: str) -> None:
    """Write ``config.json`` + ``model.safetensors`` (``save_pretrained`` format) for full ``weights``.

    The model is built on the meta device and adopts ``weights``, so nothing is allocated twice;
    ``model_class.from_pretrained(url)`` and the pipeline load the result.
    """
    with torch.device("meta"):
        module = model_class(config)
    check_state_dict(module, weights, source="the trained weights")
    module.load_state_dict(dict(weights), strict=True, assign=True)
    save_pretrained(module, config, url)

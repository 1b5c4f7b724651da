"""Training checkpoints that never lose work, sharded like the run, and the final export.

A checkpoint is the folder ``RUN_DIR/checkpoints/step-00001000/``:

- ``__0_0.distcp``, ``__1_0.distcp``, ... and ``.metadata``: a torch.distributed.checkpoint (DCP)
  of every model (the trained model, its EMA, a discriminator) and optimizer, each rank writing
  its own shards in parallel (under FSDP2 no rank gathers the full model), keyed
  ``models.<name>.<tensor>`` and ``optimizers.<name>.<...>`` by parameter name;
- ``trainer.pt`` (step, LR schedulers, stage state) and ``meta.json`` (the step and the model
  section of the config), written by rank 0;
- ``rank-00003.pt`` per rank: the RNG states (torch, CUDA, numpy, python) and the data position.

Every rank writes into ``.tmp-step-00001000`` and rank 0 renames it once all are done: the rename
is the commit, so a ``kill -9`` at any moment leaves either the complete checkpoint or none
(stale temporary folders are removed on the next start). With ``async_save`` the shards are
written by a background thread from a staged CPU copy while training goes on; the commit waits
for them (at the next checkpoint or the end of the run). Only the last ``keep_last`` are kept.
All ranks write into one folder: on several nodes it must be on a shared file system. DCP
stores each tensor's global shape and every shard's offset, so a run resumes on any number of
ranks (each reads the pieces of its own new shards). Our own files are read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor

from lavin_core.atomic import atomic_folder
from lavin_core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, check_state_dict, config_to_dict, write_safetensors
from lavin_core.errors import CheckpointError
from lavin_core.train.distributed import DistInfo, barrier, broadcast_object

PREFIX = "step-"
TEMP_PREFIX = ".tmp-step-"


@contextmanager
def _dcp_notices_off() -> Iterator[None]:
    """DCP warns that it "assumes a single process" whenever ``no_dist=True``, which LaVin passes on
    purpose (one process, or reading a checkpoint in one): not a problem, so not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def _remove(checkpoint: Path) -> None:
    """Delete a checkpoint folder so that no reader ever sees it half deleted: it is first renamed to
    a temporary name (never listed, and cleared at the next start), then removed."""
    doomed = checkpoint.with_name(f"{TEMP_PREFIX}deleted-{checkpoint.name}")
    os.rename(checkpoint, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


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
# reading a checkpoint's tensors in one process (tools, tests, export of an old run)


def saved_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Global shape of every tensor in the DCP checkpoint at ``path`` (read from ``.metadata`` only)."""
    try:
        metadata = dcp.FileSystemReader(str(path)).read_metadata()
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} is not a complete training checkpoint (no .metadata)") from err
    return {key: tuple(item.size) for key, item in metadata.state_dict_metadata.items()
            if isinstance(item, TensorStorageMetadata)}


def read_model_weights(path: str | Path, name: str = "model") -> dict[str, torch.Tensor]:
    """The full (unsharded) weights of model ``name`` in the checkpoint at ``path``, in this process,
    whatever the number of ranks that wrote it."""
    metadata = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    prefix = f"models.{name}."
    tensors = {key[len(prefix):]: torch.empty(item.size, dtype=item.properties.dtype)
               for key, item in metadata.items() if key.startswith(prefix) and isinstance(item, TensorStorageMetadata)}
    if not tensors:
        raise CheckpointError(f"{path} holds no model {name!r}")
    with _dcp_notices_off():
        dcp.load({"models": {name: tensors}}, checkpoint_id=str(path), no_dist=True)
    return tensors


# ---------------------------------------------------------------------------------------------
# the checkpoints of a run


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(path: Path) -> None:
    for file in path.iterdir():
        if file.is_file():
            with open(file, "rb+") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


class CheckpointManager:
    """Saves and restores the named models and optimizers of a run under ``RUN_DIR/checkpoints``.

    ``models``: name -> module (DDP-wrapped, FSDP2-sharded or plain); ``optimizers``: name ->
    ``(module, optimizer)`` for the module the optimizer steps. ``async_save``: write the shards
    in a background thread (see the module docstring); call ``close`` at the end.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        keep_last: int,
        info: DistInfo,
        models: Mapping[str, nn.Module],
        optimizers: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]],
        async_save: bool = False,
    ):
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.folder = Path(run_dir) / "checkpoints"
        self.keep_last, self.info = keep_last, info
        self.models, self.optimizers = dict(models), dict(optimizers)
        self.async_save = async_save
        self._pending: tuple[Any, Path, Path] | None = None
        # The background writer's collectives get a process group of their own, so that they
        # never interleave with the training step's.
        self._group = dist.new_group(backend="gloo") if async_save and info.is_distributed else None
        if info.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(f"{TEMP_PREFIX}*"):
                shutil.rmtree(stale, ignore_errors=True)
        barrier(info)

    def _state(self) -> dict[str, Any]:
        """The sharded state dicts (DTensors under FSDP2; nothing gathered), keyed by parameter name."""
        return {
            "models": {name: get_model_state_dict(model) for name, model in self.models.items()},
            "optimizers": {name: get_optimizer_state_dict(model, opt) for name, (model, opt) in self.optimizers.items()},
        }

    def save(self, step: int, *, trainer_state: Mapping[str, Any], rank_state: Mapping[str, Any],
             meta: Mapping[str, Any]) -> Path:
        """Write the checkpoint of ``step`` (atomically); every rank must call it. Returns its final folder,
        which exists once the write is committed (at once, or with ``async_save`` by the next call or ``close``)."""
        self.wait()
        final = self.folder / step_dir_name(step)
        temp = self.folder / f"{TEMP_PREFIX}{step:08d}"
        if self.info.is_main:
            shutil.rmtree(temp, ignore_errors=True)
            temp.mkdir(parents=True)
        barrier(self.info)
        state = self._state()
        if self.async_save:
            with _dcp_notices_off():
                future = dcp.async_save(state, checkpoint_id=str(temp), process_group=self._group,
                                        no_dist=not self.info.is_distributed)
        else:
            with _dcp_notices_off():
                dcp.save(state, checkpoint_id=str(temp), no_dist=not self.info.is_distributed)
            future = None
        if self.info.is_main:
            _torch_save(dict(trainer_state), temp / "trainer.pt")
            (temp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2))
        _torch_save({"rng": rng_state(self.info.device), **rank_state}, temp / f"rank-{self.info.rank:05d}.pt")
        self._pending = (future, temp, final)
        if not self.async_save:
            self.wait()
        return final

    def wait(self) -> None:
        """Finish and commit the checkpoint being written, if any (every rank must call it)."""
        if self._pending is None:
            return
        future, temp, final = self._pending
        self._pending = None
        if future is not None:
            future.result()
        barrier(self.info)
        if self.info.is_main:
            _fsync_tree(temp)
            if final.exists():  # the same step saved again (e.g. the final save after a periodic one)
                _remove(final)
            os.rename(temp, final)
            _fsync_dir(self.folder)
            for old in list_checkpoints(self.folder.parent)[:-self.keep_last]:
                _remove(old)
        barrier(self.info)

    def close(self) -> None:
        self.wait()
        if self._group is not None:
            dist.destroy_process_group(self._group)
            self._group = None

    def _check_shapes(self, path: Path, meta: Mapping[str, Any]) -> None:
        """Raise ``CheckpointError`` naming the tensors if the checkpoint was written for other shapes."""
        shapes = saved_shapes(path)
        for name, model in self.models.items():
            prefix = f"models.{name}."
            saved = {key[len(prefix):]: torch.empty(shape, device="meta")
                     for key, shape in shapes.items() if key.startswith(prefix)}
            try:
                check_state_dict(_owner(model), saved, source=f"{path} ({name})")
            except CheckpointError as err:
                raise CheckpointError(f"cannot resume from {path}: it was written for model "
                                      f"{meta.get('model', {})}; {err}") from None

    def load(self, path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore models, optimizers and this rank's RNG from ``path``; returns (trainer_state, rank_state).

        A checkpoint written for other model shapes raises ``CheckpointError`` naming the tensors.
        """
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise CheckpointError(f"{path} is not a complete training checkpoint (no meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        problem = None
        if self.info.is_main:
            try:
                self._check_shapes(path, meta)
            except CheckpointError as err:
                problem = str(err)
        problem = broadcast_object(problem, self.info)
        if problem:
            raise CheckpointError(problem)
        state = self._state()
        # Parameters that never received a gradient (the J-DiT's last conditional-stream
        # projections) have no optimizer state in the saved run: a partial load leaves them as
        # the fresh optimizer has them (zero moments, never used, since they never get a gradient).
        with _dcp_notices_off():
            dcp.load(state, checkpoint_id=str(path), planner=DefaultLoadPlanner(allow_partial_load=True),
                     no_dist=not self.info.is_distributed)
        for name, model in self.models.items():
            set_model_state_dict(model, state["models"][name])
        for name, (model, opt) in self.optimizers.items():
            set_optimizer_state_dict(model, opt, state["optimizers"][name])
        trainer_state = torch.load(path / "trainer.pt", weights_only=True)
        rank_file = path / f"rank-{self.info.rank:05d}.pt"
        if not rank_file.is_file():
            # Written with fewer ranks. The data depends only on the step, so the run goes on;
            # only this rank's RNG starts anew.
            written = len(list(path.glob("rank-*.pt")))
            print(f"lavin train: {path} has no RNG state for rank {self.info.rank} (written with {written} ranks); "
                  "continuing with fresh RNG on this rank", file=sys.stderr)
            return trainer_state, {}
        rank_state = torch.load(rank_file, weights_only=True)
        set_rng_state(rank_state.pop("rng"), self.info.device)
        return trainer_state, rank_state


def _owner(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU (a collective for a sharded DTensor: every rank must call it)."""
    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().cpu()


def export_pretrained(model_class: type, config: Any, weights: Mapping[str, torch.Tensor], url: str,
                      info: DistInfo = DistInfo()) -> None:
    """Write ``config.json`` + ``model.safetensors`` (``save_pretrained`` format) into the local folder ``url``.

    ``weights`` is a model's state dict, sharded (FSDP2 DTensors) or not; every rank calls this.
    The file is streamed tensor by tensor: each sharded tensor is gathered, written by rank 0 and
    dropped, so no rank ever holds the full model. The folder is filled under a temporary name and
    renamed into place (``atomic.atomic_folder``), so a kill mid-export leaves the old export or
    none, never one without its weights. ``model_class.from_pretrained(url)`` and the pipeline
    load the result.
    """
    with torch.device("meta"):
        module = model_class(config)
    check_state_dict(module, weights, source="the trained weights")
    if not info.is_main:
        for tensor in weights.values():
            _full(tensor)
        return
    meta = {"_class_name": model_class.__name__, **config_to_dict(config)}
    layout = [(name, tensor.dtype, tuple(tensor.shape)) for name, tensor in weights.items()]
    with atomic_folder(url) as temporary:
        folder = Path(temporary)
        (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        write_safetensors(folder / WEIGHTS_NAME, layout, lambda name: _full(weights[name]), metadata={"format": "pt"})

"""The parallelize step, torchtitan's way: everything that changes how a single-device model runs is
applied from outside it, here, in one fixed order.

``plan`` lists the steps a config asks for, in the order they are applied:

1. ``activation_checkpointing``: each repeated block (``JDiTBlock``, ...) is wrapped so that its
   activations are recomputed in backward instead of kept (``model.gradient_checkpointing``);
2. ``compile``: each repeated block is compiled on its own (regional ``torch.compile``: one
   graph, reused by every block of the same shape) (``model.compile``, resolved for the run by
   ``lavin_core.train.compile``);
3. ``fsdp``: FSDP2 ``fully_shard`` of each block, then of the root; or ``ddp`` (a wrapper,
   applied last, after the weights exist: DDP broadcasts them when it is built).

The order matters: checkpointing wraps the code that compile traces, and FSDP's hooks must see the
compiled, checkpointed blocks as its units. A model may still be on the meta device through steps
1-3 (``materialize`` then gives each rank only its shard).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from lavin_core.errors import LavinError
from lavin_core.train.distributed import DistInfo

#: ``parallel = "auto"`` shards models with more parameters than this (when there are several ranks).
FSDP_MIN_PARAMETERS = 1_000_000_000

#: Compiled variants a repeated block may need in one run (see ``apply_compile``).
BLOCK_VARIANTS = 32

#: Every step, in the order ``parallelize`` applies them.
ORDER = ("activation_checkpointing", "compile", "fsdp", "ddp")


def repeated_blocks(model: nn.Module) -> Iterator[nn.Module]:
    """The outermost modules of the ``nn.ModuleList``s of ``model`` that hold parameters (transformer
    blocks, VAE stages, ...); a block nested in another one is covered by it."""
    blocks = [m for module in model.modules() if isinstance(module, nn.ModuleList) for m in module
              if any(True for _ in m.parameters())]
    nested = {id(inner) for block in blocks for inner in block.modules() if inner is not block}
    return (block for block in blocks if id(block) not in nested)


def choose_parallel(model: nn.Module, mode: str, info: DistInfo) -> str:
    """``"none"``, ``"ddp"`` or ``"fsdp"`` for ``model`` given the config's ``mode`` (auto, ddp, fsdp)."""
    if not info.is_distributed:
        return "none"
    if mode == "auto":
        size = sum(p.numel() for p in model.parameters())
        return "fsdp" if size > FSDP_MIN_PARAMETERS else "ddp"
    if mode not in ("ddp", "fsdp"):
        raise LavinError(f"unknown parallel mode {mode!r}; use auto, ddp or fsdp")
    return mode


def plan(*, parallel: str, activation_checkpointing: bool, compile: bool) -> tuple[str, ...]:
    """The steps to apply, in ``ORDER``; ``parallel`` is ``none``, ``ddp`` or ``fsdp``."""
    if parallel not in ("none", "ddp", "fsdp"):
        raise LavinError(f"unknown parallel mode {parallel!r}; use none, ddp or fsdp")
    wanted = {"activation_checkpointing": activation_checkpointing, "compile": compile,
              "fsdp": parallel == "fsdp", "ddp": parallel == "ddp"}
    return tuple(step for step in ORDER if wanted[step])


def _replace_blocks(model: nn.Module, wrap) -> None:
    """Put ``wrap(block)`` in place of every repeated block inside its ``ModuleList``."""
    targets = {id(block) for block in repeated_blocks(model)}
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            for i, block in enumerate(module):
                if id(block) in targets:
                    module[i] = wrap(block)


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each repeated block in backward (non-reentrant checkpointing; the state-dict names
    stay the same: the wrapper's prefix is removed from every state dict and optimizer state)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    _replace_blocks(model, lambda block: checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT))


def apply_compile(model: nn.Module) -> None:
    """Compile each repeated block in place (``nn.Module.compile``: names and weights unchanged).

    ``dynamic=None`` (PyTorch's automatic dynamic shapes): the first shape compiles static, a
    second one recompiles once with dynamic sizes instead of once per shape, since training
    shapes vary with the pair count, the clip length and the null-context share of a batch.
    """
    import torch._dynamo  # here, not at import time: start-up must not load the compiler

    # Every block shares one code object, whose compiled variants count towards one recompile
    # limit (8 by default): the last block's variant, static then dynamic sizes, a batch of 1
    # (the null contexts of a batch may be one sample: sizes 0 and 1 always specialise), grad on
    # and off (sample grids) and train/eval make up to 24. Past the limit a new variant would
    # run eager for the rest of the run; measured on the lavin-tiny-icl shapes (1-5 pairs, clips),
    # the limit was reached within 40 steps.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, BLOCK_VARIANTS)
    for block in repeated_blocks(model):
        block.compile(dynamic=None)


def shard(model: nn.Module) -> nn.Module:
    """FSDP2: shard each repeated block, then the root (which holds the embeddings and the head).

    Works on the meta device: the shards get memory when ``materialize`` gives it to them.
    """
    from torch.distributed.fsdp import fully_shard

    for block in repeated_blocks(model):
        fully_shard(block)
    fully_shard(model)
    return model


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    # Some weights may get no gradient (the J-DiT's last block's conditional-stream output feeds
    # nothing), so DDP must look for unused parameters.
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def parallelize(model: nn.Module, steps: tuple[str, ...], info: DistInfo) -> nn.Module:
    """Apply ``steps`` (from ``plan``) to ``model`` in ``ORDER``; returns the module to call.

    Everything but ``ddp`` changes ``model`` in place; ``ddp`` needs materialised weights.
    """
    for step in sorted(steps, key=ORDER.index):
        if step == "activation_checkpointing":
            apply_activation_checkpointing(model)
        elif step == "compile":
            apply_compile(model)
        elif step == "fsdp":
            shard(model)
        elif step == "ddp":
            model = wrap_ddp(model, info)
        else:
            raise LavinError(f"unknown parallelize step {step!r}; known: {', '.join(ORDER)}")
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP2 shards in place, so it is the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def is_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


@torch.no_grad()
def materialize(model: nn.Module, device: torch.device, full_tensor) -> None:
    """Give the meta ``model`` (sharded or not) memory on ``device``, each rank only its shards.

    ``full_tensor(name, empty)`` fills ``empty``, a full-size tensor of state-dict entry ``name``
    (its initial values, or the weights to fine-tune from); each rank keeps its part of it, so
    no rank ever holds more than one full tensor beyond its shards.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    model.to_empty(device=device)
    for name, tensor in model.state_dict(keep_vars=True).items():
        full = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
        full_tensor(name, full)
        if isinstance(tensor, DTensor):
            local = distribute_tensor(full, tensor.device_mesh, tensor.placements, src_data_rank=None)
            tensor.to_local().copy_(local.to_local())
        else:
            tensor.data.copy_(full)
        del full

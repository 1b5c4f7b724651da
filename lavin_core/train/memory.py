"""How much memory J-DiT training takes, computed from the model code (no memory allocated).

``training_memory(config, cond_frames=..., latent_size=...)`` builds the J-DiT with fake CPU
tensors (shapes only, so that PyTorch picks the same attention kernel as a real CPU run), counts
its parameters (weights, gradients, AdamW's two moments and the EMA are each one
float32 value per parameter) and runs one forward on fake tensors under
``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd keeps for backward is counted
once (views of one storage are one). With activation checkpointing (applied as the trainer does,
``parallelize.apply_activation_checkpointing``) only each block's inputs are kept, plus the
activations of the one block being recomputed during backward.

Under FSDP2 the weights, gradients, moments and EMA divide by the number of ranks; activations do
not (each rank runs its own samples), and the all-gathered weights of the block in flight come on
top (two blocks' worth with prefetching).
"""

from __future__ import annotations

import attrs
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from lavin_core.jdit import JDiT, JDiTConfig

GB = 1e9


@attrs.frozen(kw_only=True)
class TrainingMemory:
    """Bytes per rank of each part of a J-DiT training step (float32 training, AdamW, an EMA)."""

    parameters: int
    weights: int
    gradients: int
    optimizer: int
    ema: int
    #: Saved for backward, per sample of the given token counts.
    activations: int
    tokens: int
    #: The largest block's parameters (FSDP2 all-gathers one block at a time).
    block_weights: int

    @property
    def states(self) -> int:
        """Weights + gradients + optimizer + EMA."""
        return self.weights + self.gradients + self.optimizer + self.ema

    @property
    def activations_per_token(self) -> float:
        return self.activations / self.tokens


def saved_activation_bytes(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes autograd saves for backward in ``model(*inputs)`` (each storage counted once, at its full size)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen.setdefault(storage._cdata, storage.nbytes())
        return tensor

    params = {p.untyped_storage()._cdata for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*inputs)
    return sum(size for key, size in seen.items() if key not in params)  # weights are counted apart


def _inputs(config: JDiTConfig, cond_frames: int, target_frames: int, latent_size: int):
    shape = (1, config.in_channels)
    return (torch.randn(*shape, target_frames, latent_size, latent_size),
            torch.rand(1),
            torch.randn(*shape, cond_frames, latent_size, latent_size))


def training_memory(config: JDiTConfig, *, cond_frames: int, target_frames: int = 1, latent_size: int,
                    activation_checkpointing: bool, world_size: int = 1) -> TrainingMemory:
    """The memory of one rank training ``config`` with FSDP2 over ``world_size`` ranks, per sample of
    ``cond_frames`` conditional and ``target_frames`` target latent frames of ``latent_size`` squared."""
    from lavin_core.train.parallelize import apply_activation_checkpointing

    with torch.device("meta"):
        model = JDiT(attrs.evolve(config, gradient_checkpointing=False)).train()
    params = sum(p.numel() for p in model.parameters())
    block = max(sum(p.numel() for p in b.parameters()) for b in model.blocks)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")
        inputs = _inputs(config, cond_frames, target_frames, latent_size)
        full = saved_activation_bytes(model, *inputs)
        if activation_checkpointing:
            apply_activation_checkpointing(model)
            # Kept: each block's inputs; in backward one block at a time is recomputed with
            # everything it saves.
            activations = int(saved_activation_bytes(model, *inputs) + full / config.depth)
        else:
            activations = full
    patches = (latent_size // config.patch_size) ** 2
    share = -(-params // world_size)  # ceil: FSDP2 pads the last shard
    return TrainingMemory(parameters=params, weights=4 * share, gradients=4 * share, optimizer=8 * share,
                          ema=4 * share, activations=activations, tokens=(cond_frames + target_frames) * patches,
                          block_weights=4 * block)

"""Task contexts: a few example (input, target) pairs and a query, validated once at creation.

Every pixel tensor is ``(3, T, H, W)`` float in [-1, 1] with ``T = 1`` for images and
``T = 1 + 4k`` for clips. All inputs (and the query) share one shape, all targets share one
shape, and inputs and targets share height and width: the J-DiT puts them in one sequence.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor

#: Clips must have ``1 + TEMPORAL_STRIDE * k`` frames (the ST-VAE's 4x causal compression).
TEMPORAL_STRIDE = 4


def check_pixels(tensor: Any, what: str) -> Tensor:
    """Return ``tensor`` if it is valid pixels ``(3, T, H, W)`` in [-1, 1]; raise ``ValueError`` naming ``what``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (3, T, H, W) in [-1, 1], got {type(tensor).__name__}")
    if tensor.ndim != 4 or tensor.shape[0] != 3:
        raise ValueError(f"{what} must have shape (3, T, H, W), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{what} must be a float tensor in [-1, 1], got dtype {tensor.dtype}")
    frames = tensor.shape[1]
    if (frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"{what} has {frames} frames; a clip needs 1 + {TEMPORAL_STRIDE}k frames (1, 5, 9, ...)")
    if tensor.numel() == 0:
        raise ValueError(f"{what} is empty: shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    low, high = tensor.min().item(), tensor.max().item()
    if low < -1.0 or high > 1.0:
        raise ValueError(
            f"{what} has values in [{low:.3g}, {high:.3g}]; pixels must lie in [-1, 1] (map uint8 x to x / 127.5 - 1)"
        )
    return tensor


@attrs.frozen(kw_only=True)
class ExamplePair:
    """One demonstration of a task: an input and the target the task makes of it."""

    input: Tensor = attrs.field(validator=lambda _, __, value: check_pixels(value, "pair input"))
    target: Tensor = attrs.field(validator=lambda _, __, value: check_pixels(value, "pair target"))

    def __attrs_post_init__(self) -> None:
        if self.input.shape[2:] != self.target.shape[2:]:
            raise ValueError(
                f"pair input is {tuple(self.input.shape[2:])} (H, W) but its target is "
                f"{tuple(self.target.shape[2:])}; resize them to one size"
            )


@attrs.frozen(kw_only=True)
class Example:
    """A task example with its ground truth: the pair, the structured answer and an id."""

    pair: ExamplePair
    #: The structured truth the target draws (depth map, mask, keypoints, ...), task-specific.
    answer: Any = None
    #: A stable id, unique within the task and source, e.g. ``"scene-seed0-00017"``.
    id: str = ""


def _check_pairs(instance: TaskContext, attribute: attrs.Attribute, pairs: tuple[ExamplePair, ...]) -> None:
    for index, pair in enumerate(pairs):
        if not isinstance(pair, ExamplePair):
            raise TypeError(f"pairs[{index}] must be an ExamplePair, got {type(pair).__name__}")


@attrs.frozen(kw_only=True)
class TaskContext:
    """What the model sees: the task name, example pairs that define the task, and the query.

    ``pairs`` may be empty only for the classifier-free-guidance null context.
    """

    task: str = attrs.field(validator=attrs.validators.instance_of(str))
    pairs: tuple[ExamplePair, ...] = attrs.field(converter=tuple, validator=_check_pairs)
    query: Tensor = attrs.field(validator=lambda _, __, value: check_pixels(value, "query"))

    def __attrs_post_init__(self) -> None:
        if not self.task:
            raise ValueError("task name must not be empty")
        for index, pair in enumerate(self.pairs):
            if pair.input.shape != self.query.shape:
                raise ValueError(
                    f"pairs[{index}].input has shape {tuple(pair.input.shape)} but the query has "
                    f"{tuple(self.query.shape)}; every input must match the query's (3, T, H, W)"
                )
            if pair.target.shape != self.pairs[0].target.shape:
                raise ValueError(
                    f"pairs[{index}].target has shape {tuple(pair.target.shape)} but pairs[0].target has "
                    f"{tuple(self.pairs[0].target.shape)}; all targets must share one shape"
                )

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Shape ``(3, T, H, W)`` of the target to generate: that of the example targets (or the query)."""
        return tuple(self.pairs[0].target.shape) if self.pairs else tuple(self.query.shape)

    def frames(self) -> list[Tensor]:
        """The conditional pixel sequence ``[in_1, tgt_1, ..., in_N, tgt_N, query]``, each ``(3, T, H, W)``."""
        sequence = [tensor for pair in self.pairs for tensor in (pair.input, pair.target)]
        return [*sequence, self.query]

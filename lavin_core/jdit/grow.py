"""A deeper J-DiT that starts out computing exactly what a trained one computes (block expansion).

Each new block is a copy of the trained block before it whose two adaLN modulation output layers
(``cond_modulation.1``, ``x_modulation.1``) are zero. Its tanh gates are then 0, both residual
branches of both streams add nothing, and the deeper network returns the trained network's output
to the bit; training starts from there with more capacity (the gates get gradients at once: a
gate's output layer sees ``dL/dg * c``). This is the block expansion of LLaMA Pro (Wu et al., 2024,
arXiv 2401.02415), here for the sandwich-norm, tanh-gated J-DiT block.

The trained network's last block skipped its conditional stream (nothing read it), so those
weights are as initialised; grown, that block is no longer last, but its conditional gates are the
zero-initialised ones and still pass the stream through unchanged.
"""

from __future__ import annotations

import attrs
from torch import Tensor

from lavin_core.jdit.config import JDiTConfig

BLOCKS = "blocks."
#: The output layers of a block's adaLN modulation: zero in a new block, so its gates are 0.
GATE_LAYERS = ("cond_modulation.1.", "x_modulation.1.")


def block_sources(depth: int, new_depth: int) -> list[tuple[int, bool]]:
    """For each block of a ``new_depth`` network, the trained block it copies and whether it is new.

    The ``new_depth - depth`` new blocks are spread evenly, each right after the block it copies:
    ``block_sources(2, 4)`` is ``[(0, False), (0, True), (1, False), (1, True)]``.
    """
    if depth < 1 or new_depth < depth:
        raise ValueError(f"cannot grow a J-DiT of depth {depth} to depth {new_depth}; the new depth must be "
                         f"at least the old one ({depth})")
    extra = new_depth - depth
    sources = []
    for i in range(depth):
        copies = (i + 1) * extra // depth - i * extra // depth
        sources += [(i, False)] + [(i, True)] * copies
    return sources


def grow_depth(state: dict[str, Tensor], config: JDiTConfig, new_depth: int) -> tuple[dict[str, Tensor], JDiTConfig]:
    """The state dict and config of a ``new_depth`` J-DiT that computes what ``state`` does.

    ``state`` is a J-DiT state dict of ``config``; tensors are copied, never shared.
    """
    layout = block_sources(config.depth, new_depth)
    per_block: dict[int, dict[str, Tensor]] = {}
    grown: dict[str, Tensor] = {}
    for name, tensor in state.items():
        if name.startswith(BLOCKS):
            index, _, rest = name[len(BLOCKS):].partition(".")
            per_block.setdefault(int(index), {})[rest] = tensor
        else:
            grown[name] = tensor.clone()
    if sorted(per_block) != list(range(config.depth)):
        raise ValueError(f"the state dict holds blocks {sorted(per_block)}, not the config's {config.depth}")
    for position, (source, new) in enumerate(layout):
        for rest, tensor in per_block[source].items():
            copy = tensor.clone()
            if new and rest.startswith(GATE_LAYERS):
                copy.zero_()
            grown[f"{BLOCKS}{position}.{rest}"] = copy
    return grown, attrs.evolve(config, depth=new_depth)

"""Random checkpoints in the authors' exact file layouts, at any size, written without holding them in memory.

The authors' ``lavin_dit.safetensors`` (6.8 GB) and ``stvae.pt`` are needed to exercise the
full-size loading path, but a machine without them can write stand-ins: the same tensor names,
shapes and order (checked against the listings ``lavin_dit_3.4b_state_dict.tsv`` and
``stvae_state_dict.tsv`` where they apply), the same container (safetensors; a torch zip file
whose ``state_dict`` key holds the tensors), random values. Each tensor is drawn from its own
generator seeded by ``(seed, name)``, so ``random_tensor`` gives back any one of them without
reading the file, and a file is written one tensor at a time.

Values: norm scales (1-D ``*.weight``) near 1, biases small, other weights ``N(0, 1 / fan_in)``,
so a forward pass through the random network keeps sensible activations.
"""

from __future__ import annotations

import ast
import math
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode

from lavin_core.checkpoint import write_safetensors
from lavin_core.jdit.model import tensor_seed

#: ``(name, shape)`` of every tensor of a checkpoint, in file order.
Layout = list[tuple[str, tuple[int, ...]]]


def read_listing(path: str | Path) -> Layout:
    """The ``name<TAB>shape`` lines of a state-dict listing (``#`` lines are comments)."""
    layout = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            name, shape = line.split("\t")
            layout.append((name, tuple(int(d) for d in ast.literal_eval(shape))))
        except (ValueError, SyntaxError, TypeError):
            raise ValueError(f"{path}:{number}: expected 'name<TAB>(d0, d1, ...)', got {line!r}") from None
    return layout


def module_layout(module: nn.Module) -> Layout:
    """The layout of ``module``'s state dict (build it on the meta device: nothing is allocated)."""
    return [(name, tuple(t.shape)) for name, t in module.state_dict().items()]


def checked_layout(module: nn.Module, listing: str | Path | None) -> Layout:
    """``module``'s layout in the order of ``listing``, which must name exactly its tensors and shapes."""
    ours = module_layout(module)
    if listing is None:
        return ours
    listed = read_listing(listing)
    if dict(listed) != dict(ours):
        differ = sorted(set(dict(listed).items()) ^ set(dict(ours).items()))[:5]
        raise ValueError(f"{listing} does not list the tensors of this {type(module).__name__} "
                         f"(first differences: {differ}); pick the preset the listing describes")
    return listed


def random_tensor(name: str, shape: Sequence[int], dtype: torch.dtype, seed: int = 0) -> Tensor:
    """The tensor ``name`` of the random checkpoint of ``seed`` (drawn in float32, then cast)."""
    generator = torch.Generator().manual_seed(tensor_seed(seed, name))
    values = torch.randn(tuple(shape), generator=generator)
    if len(shape) == 1 and name.endswith("weight"):  # a norm's scale
        values = 1.0 + 0.02 * values
    elif len(shape) == 1:
        values = 0.02 * values
    else:
        values = values / math.sqrt(math.prod(shape[1:]))
    return values.to(dtype)


def write_random_safetensors(path: str | Path, layout: Layout, dtype: torch.dtype, seed: int = 0) -> None:
    """A safetensors file of ``layout`` with random values (``lavin_dit.safetensors``'s container)."""
    shapes = dict(layout)
    write_safetensors(Path(path), [(name, dtype, shape) for name, shape in layout],
                      lambda name: random_tensor(name, shapes[name], dtype, seed))


def write_random_torch_file(path: str | Path, layout: Layout, dtype: torch.dtype, seed: int = 0) -> None:
    """A torch zip file ``{"state_dict": {...}}`` of ``layout`` with random values (``stvae.pt``'s container).

    ``torch.save`` writes the structure with room for the data but without it (``skip_data`` on
    fake tensors); the file is then memory-mapped writable and filled one tensor at a time.
    Written under a temporary name and renamed when complete.
    """
    path = Path(path)
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with FakeTensorMode():
            fake = {name: torch.empty(shape, dtype=dtype) for name, shape in layout}
        with torch.serialization.skip_data(materialize_fake_tensors=True):
            torch.save({"state_dict": fake}, temp)
        del fake
        previous = torch.serialization.get_default_mmap_options()
        torch.serialization.set_default_mmap_options(mmap.MAP_SHARED)  # writes reach the file
        try:
            state = torch.load(temp, mmap=True, weights_only=True)["state_dict"]
        finally:
            torch.serialization.set_default_mmap_options(previous)
        for name, shape in layout:
            state[name].copy_(random_tensor(name, shape, dtype, seed))
        del state  # unmaps; the kernel writes the dirty pages back
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()

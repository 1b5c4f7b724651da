"""A toy workspace for smoke tests and first runs: one template task and an untrained tiny ST-VAE.

``make_toy_workspace(folder)`` writes ``folder/invert/`` (pairs of blocky colour images and their
colour negatives, the official ``NAME_input.png`` / ``NAME_target.png`` layout) and
``folder/vae/`` (a randomly initialised ``lavin-tiny`` ST-VAE, ``save_pretrained`` format), and
returns the config text of a short dit run on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lavin_core.stvae import STVAE


def make_toy_workspace(folder: str | Path, *, pairs: int = 12, size: int = 32, seed: int = 0) -> str:
    """Write the toy task and VAE into ``folder``; returns a TOML config of a tiny dit run on them."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    task = folder / "invert"
    task.mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        blocks = rng.random((4, 4, 3))  # 4x4 colour blocks, upsampled to size x size
        image = np.kron(blocks, np.ones((size // 4, size // 4, 1)))
        Image.fromarray((image * 255).round().astype(np.uint8)).save(task / f"{i:02d}_input.png")
        Image.fromarray(((1 - image) * 255).round().astype(np.uint8)).save(task / f"{i:02d}_target.png")
    torch.manual_seed(seed)
    STVAE.from_preset("lavin-tiny").save_pretrained(str(folder / "vae"))
    return f"""\
[run]
steps = 20
log_every = 5
[model]
preset = "lavin-tiny"
vae = "{(folder / 'vae').as_posix()}"
[tasks]
invert = 1.0
[data]
source = "templates"
templates = ["{task.as_posix()}"]
image_size = {size}
max_pairs = 4
[optimizer]
lr = 1e-3
[train]
batch_size = 4
[checkpoint]
every = 10
[samples]
every = 0
"""

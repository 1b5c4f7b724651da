"""A randomly initialised lavin-tiny model folder (``dit/`` + ``vae/`` + index) for tests.

Weights are random: predictions are noise. Sampling uses the uniform schedule so that tests can
run with a couple of steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lavin_core.pretrained.folders import INDEX_FILE
from lavin_core.pipeline import load_pipeline

TRAINED = ("depth", "edges")


def make_model_folder(path: Path, *, seed: int = 0, trained: tuple[str, ...] | None = TRAINED) -> Path:
    """Write a random lavin-tiny J-DiT and ST-VAE (float16 weights) into ``path``; returns it."""
    from lavin_core.jdit import JDiT, get_preset
    from lavin_core.stvae import STVAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dit, vae = JDiT(get_preset("lavin-tiny")).half(), STVAE.from_preset("lavin-tiny").half()
    dit.save_pretrained(str(path / "dit"))
    vae.save_pretrained(str(path / "vae"))
    index = {"name": "test-tiny", "image_size": 64}
    if trained is not None:
        index["trained_tasks"] = list(trained)
    (path / INDEX_FILE).write_text(json.dumps(index))
    return path


def tiny_pipeline(folder: Path):
    return load_pipeline(folder, sampler="euler", schedule="uniform")

"""Guard: the shipped lavin-tiny weights are the trained ones.

On fixed examples never used in training (seed 2026), the shipped model must clearly beat the
copy-the-query baseline on depth (abs_rel) and surface normals (mean angle); random weights do
not. Fails, never skips, when the weights are not in ``lavin_core/weights/lavin-tiny``.
Set ``LAVIN_SHIPPED_MODEL=/path/to/model-folder`` to check a candidate folder before shipping it.

    OMP_NUM_THREADS=1 python -m pytest tests/test_shipped_weights.py -q
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import safetensors.torch
import torch

import registry
from lavin_core import evaluation
from lavin_core.pretrained import folders
from lavin_core.pipeline import load_pipeline

#: (task, cases, main-metric check) for the guard; a check takes (model score, copy-query score).
CHECKS = {
    "depth": lambda model, copy: model <= 0.6 * copy,  # abs_rel, lower is better
    "normals": lambda model, copy: model <= 0.5 * copy,  # mean angular error, lower is better
}
COUNT, NUM_PAIRS = 4, 3
MAX_MB = 40


def shipped_folder() -> Path:
    candidate = os.environ.get("LAVIN_SHIPPED_MODEL")
    if candidate:
        return folders.get_model(candidate).path
    path = folders.shipped_path("lavin-tiny")
    if not folders.weights_present("lavin-tiny"):
        pytest.fail(
            f"the shipped lavin-tiny weights are missing at {path}: export them with "
            "`python scripts/export_shipped.py runs/lavin-tiny-dit/export runs/lavin-tiny-vae/export` and commit them",
            pytrace=False,
        )
    return path


def test_shipped_folder_is_small_half_precision_and_indexed():
    folder = shipped_folder()
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) / 2**20 <= MAX_MB
    for part in ("dit", "vae"):
        tensors = safetensors.torch.load_file(str(folder / part / "model.safetensors"))
        dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
        assert len(dtypes) == 1 and dtypes <= {torch.float16, torch.bfloat16}, dtypes
    trained = folders.get_model(folder).trained_tasks
    assert trained is not None and set(CHECKS) <= set(trained)


@pytest.mark.slow
def test_shipped_model_beats_copying_the_query():
    pipe = load_pipeline(shipped_folder())
    tasks = {name: registry.get_task(name, size=64) for name in CHECKS}
    cases = {name: evaluation.draw_cases(task, COUNT, num_pairs=NUM_PAIRS) for name, task in tasks.items()}
    every = [case for name in CHECKS for case in cases[name]]
    predictions = evaluation.predict(pipe, every, progress=False)
    failures = []
    for index, (name, task) in enumerate(tasks.items()):
        mine = predictions[index * COUNT : (index + 1) * COUNT]
        main = task.metrics[0]
        model = evaluation.mean_scores([evaluation.score(task, p, c.answer) for p, c in zip(mine, cases[name])],
                                       [main])[main]
        copy = evaluation.mean_scores(
            [evaluation.score(task, evaluation.copy_query(c), c.answer) for c in cases[name]], [main])[main]
        if not CHECKS[name](model, copy):
            failures.append(f"{name}: {main} {model:.3f} vs copy-the-query {copy:.3f}")
    assert not failures, "the shipped weights do not look trained: " + "; ".join(failures)


#: Tasks drawn per context on which the shipped in-context model must read its context: a trained
#: colour map and a held-out map family (lavin-tiny-icl; configs/lavin-tiny-icl/README.md).
READING = ("map_channel_invert", "map_duotone")


@pytest.mark.slow
@pytest.mark.parametrize("name", READING)
def test_shipped_icl_model_reads_its_context(name):
    """One query, two contexts that differ only in the hidden map: each answer is closer to its own
    context's truth (``lavin_core.evaluation.context_reading``); a model that ignores its examples
    gives one answer for both and scores 0.5."""
    from lavin_core.evaluation.context_reading import context_reading

    folder = os.environ.get("LAVIN_SHIPPED_ICL_MODEL") or "lavin-tiny-icl"
    if not os.environ.get("LAVIN_SHIPPED_ICL_MODEL") and not folders.weights_present("lavin-tiny-icl"):
        pytest.fail("the shipped lavin-tiny-icl weights are missing from lavin_core/weights/lavin-tiny-icl",
                    pytrace=False)
    task = registry.get_task(name, size=64)
    result = context_reading(load_pipeline(folder), task, trials=4, num_pairs=3, num_steps=10, progress=False)
    assert result.closer >= 0.75, result.as_dict()

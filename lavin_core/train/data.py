"""Training data: deterministic task contexts for any (seed, step, sample index).

Every sample of the global batch has a global index ``step * batch_size + i``; rank ``r`` of
``world_size`` takes the indices ``i = r, r + world_size, ...``. What a sample holds is a pure
function of ``(seed, step, index)``, so a run is the same on one process or many, and the data
position after a crash is simply the step (nothing to replay).

Within one step all samples share the task and the number of example pairs (they are stacked
into one batch); both are drawn per step from ``(seed, step)`` with the task mix weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import Tensor

from lavin_core.context import ExamplePair
from lavin_core.errors import LavinError
from lavin_core.images import resize
from lavin_core.train.config import DataConfig

#: ``(task, count, seed) -> count`` example pairs, all of one shape.
PairSource = Callable[[str, int, int], list[ExamplePair]]


def seed_for(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def generator_for(*keys: int) -> torch.Generator:
    """A CPU generator seeded from ``keys``, e.g. ``(seed, step, index)``."""
    return torch.Generator().manual_seed(seed_for(*keys))


def rank_indices(step: int, batch_size: int, rank: int, world_size: int) -> list[int]:
    """The global sample indices of ``step`` that ``rank`` processes."""
    if batch_size % world_size:
        raise LavinError(
            f"train.batch_size {batch_size} must be divisible by the number of ranks {world_size}; "
            f"use {batch_size - batch_size % world_size or world_size}"
        )
    return [step * batch_size + i for i in range(rank, batch_size, world_size)]


@attrs.frozen(kw_only=True)
class StepPlan:
    """What every sample of one step shares."""

    task: str
    num_pairs: int


def plan_step(seed: int, step: int, tasks: Mapping[str, float], min_pairs: int, max_pairs: int) -> StepPlan:
    """The task (drawn by mix weight) and pair count (uniform in [min, max]) of ``step``."""
    rng = np.random.default_rng(seed_for(seed, step, 0x7A5C))
    names = list(tasks)
    weights = np.array([tasks[n] for n in names], dtype=np.float64)
    task = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return StepPlan(task=task, num_pairs=int(rng.integers(min_pairs, max_pairs + 1)))


@attrs.frozen(kw_only=True)
class PixelBatch:
    """A stack of contexts in pixels, each ``(B, 3, T, H, W)``.

    ``pairs``: ``num_pairs`` (input, target) tuples; ``query`` and ``target``: the query input and
    the target the model must generate for it.
    """

    task: str
    pairs: tuple[tuple[Tensor, Tensor], ...]
    query: Tensor
    target: Tensor
    indices: tuple[int, ...]


def _fit(pixels: Tensor, size: int) -> Tensor:
    return pixels if pixels.shape[-2:] == (size, size) else resize(pixels, (size, size))


def build_batch(source: PairSource, plan: StepPlan, indices: Sequence[int], *, seed: int, image_size: int) -> PixelBatch:
    """The contexts of ``indices``: each draws ``num_pairs + 1`` pairs, the last one being the query."""
    contexts = []
    for index in indices:
        pairs = source(plan.task, plan.num_pairs + 1, seed_for(seed, index))
        contexts.append([(_fit(p.input, image_size), _fit(p.target, image_size)) for p in pairs])
    stacked = [(torch.stack([c[k][0] for c in contexts]), torch.stack([c[k][1] for c in contexts]))
               for k in range(plan.num_pairs + 1)]
    return PixelBatch(task=plan.task, pairs=tuple(stacked[:-1]), query=stacked[-1][0], target=stacked[-1][1],
                      indices=tuple(indices))


def generator_source(task_names: Sequence[str]) -> PairSource:
    """Pairs from the registered tasks' example generators (``Task.examples``)."""
    import registry

    tasks = {name: registry.get_task(name) for name in task_names}

    def source(task: str, count: int, seed: int) -> list[ExamplePair]:
        return [example.pair for example in tasks[task].examples(count, seed=seed)]

    return source


def template_source(folders: Sequence[str], image_size: int) -> tuple[PairSource, list[str]]:
    """Pairs drawn from template folders, each folder one task named after it; returns (source, names)."""
    from lavin_core.templates import read_template_folder

    pools = {Path(str(folder).rstrip("/")).name: read_template_folder(folder, size=(image_size, image_size))
             for folder in folders}

    def source(task: str, count: int, seed: int) -> list[ExamplePair]:
        pool = pools[task]
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(pool), size=count, replace=len(pool) < count)
        return [pool[int(i)] for i in picks]

    return source, list(pools)


def make_source(data: DataConfig, task_names: Sequence[str]) -> PairSource:
    """The pair source a data config names; checks that every task of the mix exists."""
    if data.source == "generators":
        return generator_source(task_names)
    if data.source == "templates":
        source, names = template_source(data.templates, data.image_size)
        missing = sorted(set(task_names) - set(names))
        if missing:
            raise LavinError(
                f"[tasks] names {', '.join(missing)} but the template folders are {', '.join(names)}; "
                "with source = \"templates\" each task is a folder, named by its last path part"
            )
        return source
    raise LavinError(f'data.source = "{data.source}" has no pixel source; the dit stage reads it directly')

"""Examples of tasks whose instance is drawn per context (``Task.instance``), for the places that
keep examples in a pool: the latent cache and the loader's ``pool_size`` mode.

A pool of such a task is a sequence of groups: examples ``[k g, (k + 1) g)`` come from instance
``k``, ``task.instance(context_seed(seed, k))``, and a context takes all its pairs and its
query from one group, so that they share one hidden mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lavin_core.context import Example
from lavin_core.errors import LavinError
from lavin_core.interfaces import Task
from lavin_core.seeds import context_seed


def varies(task: Task) -> bool:
    """Whether ``task`` draws its instance per context (``instance`` returns another task)."""
    return task.instance(0) is not task


class GroupedExamples:
    """Example ``index`` of a pool of ``task`` with ``seed``, ``group_size`` examples per instance."""

    def __init__(self, task: Task, *, seed: int, group_size: int):
        if group_size < 2:
            raise ValueError(f"group_size must be at least 2 (a pair and a query), got {group_size}")
        self.task, self.seed, self.group_size = task, seed, group_size

    def instance(self, group: int) -> Task:
        return self.task.instance(context_seed(self.seed, group))

    def example(self, index: int) -> Example:
        group, position = divmod(index, self.group_size)
        instance, seed = self.instance(group), context_seed(self.seed, group)
        if callable(getattr(instance, "example", None)):
            return instance.example(position, seed=seed)
        examples = list(instance.examples(position + 1, seed=seed))
        if len(examples) <= position:
            raise LavinError(f"task {self.task.name!r} gave {len(examples)} examples when asked for {position + 1}")
        return examples[position]


def group_positions(indices: Sequence[int], group_size: int) -> list[list[int]]:
    """Positions in a pool, one list per instance group, of the example ``indices`` it holds."""
    groups: dict[int, list[int]] = {}
    for position, index in enumerate(indices):
        groups.setdefault(int(index) // group_size, []).append(position)
    return [groups[g] for g in sorted(groups)]


def choose_group(groups: Sequence[list[int]], needed: int, rng: np.random.Generator) -> list[int]:
    """One group (its positions) of at least ``needed`` examples, uniformly among those."""
    usable = [g for g in groups if len(g) >= needed]
    if not usable:
        largest = max((len(g) for g in groups), default=0)
        raise LavinError(
            f"no instance group holds {needed} examples (a query and {needed - 1} pairs; the largest holds "
            f"{largest}); build the pool with a larger group_size or use max_pairs <= {max(largest - 1, 0)}"
        )
    return usable[int(rng.integers(len(usable)))]


class Subset(Sequence):
    """The items of ``base`` at ``positions``, as a sequence."""

    def __init__(self, base: Sequence[Any], positions: Sequence[int]):
        self.base, self.positions = base, list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.positions[index]]

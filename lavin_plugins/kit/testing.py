"""Contract checks for a plugin's own test suite: call them on your task, they raise
``AssertionError`` naming what broke.

    from lavin_plugins.kit.testing import check_task

    def test_my_task_keeps_the_contract():
        check_task(MyTask(size=32))                    # all of the checks below
        check_task(MyTask(size=32, style="drawn"), round_trip_atol=2.0)

- ``check_examples``: examples are deterministic in ``seed`` (same pixels and ids twice), valid
  pixels ``(3, T, H, W)`` in [-1, 1], one shape throughout, and their targets are ``render(answer)``;
- ``check_round_trip``: ``read(render(answer)) == answer`` (floats within ``atol``);
- ``check_self_score``: ``score`` gives every metric in ``metrics``, and the truth scored against
  itself is at least as good as any other example's answer on every metric, strictly on the main one;
- ``check_instances``: ``instance(seed)`` is deterministic, leaves the task unchanged, keeps the
  name and metrics, and every instance passes the checks above.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from lavin_core.context import check_pixels
from lavin_core.interfaces import Task
from lavin_core.seeds import context_seed


def as_array(answer: Any) -> np.ndarray:
    """An answer (array, tensor, number, nested sequence) as a numpy array."""
    if isinstance(answer, torch.Tensor):
        return answer.detach().cpu().numpy()
    return np.asarray(answer)


def answers_equal(a: Any, b: Any, *, atol: float = 1e-4) -> bool:
    """Whether two answers are the same: exact for integers and booleans, within ``atol`` for floats (NaN equals NaN)."""
    x, y = as_array(a), as_array(b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "biu" and y.dtype.kind in "biu":
        return bool(np.array_equal(x, y))
    return bool(np.allclose(x.astype(np.float64), y.astype(np.float64), atol=atol, rtol=0, equal_nan=True))


def check_examples(task: Task, *, count: int = 3, seed: int = 0) -> None:
    first, second = list(task.examples(count, seed=seed)), list(task.examples(count, seed=seed))
    assert len(first) == count, f"{task.name}: examples({count}) gave {len(first)} examples"
    shapes = {(tuple(e.pair.input.shape), tuple(e.pair.target.shape)) for e in first}
    assert len(shapes) == 1, f"{task.name}: examples of one task must share one shape, got {sorted(shapes)}"
    for a, b in zip(first, second):
        check_pixels(a.pair.input, f"{task.name} example input")
        check_pixels(a.pair.target, f"{task.name} example target")
        assert a.id == b.id and torch.equal(a.pair.input, b.pair.input) and torch.equal(a.pair.target, b.pair.target), (
            f"{task.name}: examples(count, seed={seed}) differ between two calls (example {a.id!r}); "
            "draw everything from the seed")
        assert torch.allclose(task.render(a.answer), a.pair.target, atol=1e-6), (
            f"{task.name}: example {a.id!r}'s target is not render(answer)")
    assert len({e.id for e in first}) == count, f"{task.name}: example ids must be unique"


def check_round_trip(task: Task, *, count: int = 3, seed: int = 0, atol: float = 1e-4) -> None:
    for example in task.examples(count, seed=seed):
        read = task.read(task.render(example.answer))
        assert answers_equal(read, example.answer, atol=atol), (
            f"{task.name}: read(render(answer)) differs from the answer of example {example.id!r} (atol {atol}); "
            "read must invert render, and it also reads model samples and baselines")


def _no_worse(a: float, b: float, up: bool) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(b) or not math.isnan(a)
    return a >= b - 1e-9 if up else a <= b + 1e-9


def check_self_score(task: Task, *, count: int = 3, seed: int = 0) -> None:
    examples = list(task.examples(count, seed=seed))
    missing = set(task.metrics) - set(task.higher_is_better)
    assert not missing, f"{task.name}: higher_is_better lacks {sorted(missing)}"
    main = task.metrics[0]
    for i, example in enumerate(examples):
        perfect = task.score(example.answer, example.answer)
        assert set(task.metrics) <= set(perfect), f"{task.name}: score() lacks {sorted(set(task.metrics) - set(perfect))}"
        for j, other in enumerate(examples):
            if i == j:
                continue
            wrong = task.score(other.answer, example.answer)
            for metric in task.metrics:
                up = task.higher_is_better[metric]
                assert _no_worse(perfect[metric], wrong[metric], up), (
                    f"{task.name}: {metric} of the truth against itself ({perfect[metric]}) is worse than of "
                    f"another example's answer ({wrong[metric]})")
            assert perfect[main] != wrong[main], (
                f"{task.name}: the main metric {main} cannot tell the truth ({perfect[main]}) from another "
                f"example's answer ({wrong[main]})")


def _stable(task: Task) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(task))


def check_instances(task: Task, *, instances: int = 2, count: int = 3, seed: int = 0, atol: float = 1e-4) -> None:
    before = _stable(task)
    for k in range(instances):
        s = context_seed(seed, k)
        first, second = task.instance(s), task.instance(s)
        assert _stable(first) == _stable(second), f"{task.name}: instance({s}) is not deterministic"
        assert first.name == task.name and tuple(first.metrics) == tuple(task.metrics), (
            f"{task.name}: an instance must keep the task's name and metrics")
        check_examples(first, count=count, seed=seed)
        check_round_trip(first, count=count, seed=seed, atol=atol)
        check_self_score(first, count=count, seed=seed)
    assert _stable(task) == before, f"{task.name}: instance() changed the task itself (repr before: {before})"


def check_task(task: Task, *, count: int = 3, seed: int = 0, round_trip_atol: float = 1e-4, instances: int = 2) -> None:
    """Every check of this module on ``task``, or, for a task drawn per context (whose examples come
    from its instances), on ``instances`` of its instances."""
    if task.instance(context_seed(seed, 0)) is task:
        check_examples(task, count=count, seed=seed)
        check_round_trip(task, count=count, seed=seed, atol=round_trip_atol)
        check_self_score(task, count=count, seed=seed)
    check_instances(task, instances=instances, count=count, seed=seed, atol=round_trip_atol)

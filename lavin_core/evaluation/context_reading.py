"""Does a model read its context? One query, two contexts that differ only in the hidden
parameter of a task drawn per context (two palettes, two colour maps), two answers: a model that
reads its examples gives each context an answer closer to that context's own truth.

    >>> result = context_reading(pipe, registry.get_task("map_hue_rotate"), trials=8)
    >>> result.both_closer            # fraction of trials where both answers are closer to their own truth

Trial ``k`` draws two instances of the task (context seeds ``context_seed(mix_seed(seed, k), j)``,
``j = 0`` and the first ``j`` whose query target differs) and from each the same examples, so
the example inputs and the query are the very same images and only the targets differ. Distances
are pixel mean squared errors between a prediction and each context's true target, so the test
needs no task-specific reading and works for every task whose inputs do not depend on its instance.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from lavin_core.errors import LavinError
from lavin_core.evaluation.cases import EVAL_SEED, Case, examples_between, predict
from lavin_core.interfaces import Task
from lavin_core.seeds import context_seed, mix_seed


@attrs.frozen
class ContextReading:
    """Per trial, the squared-error distances ``(own, other)`` of each of the two answers."""

    distances: tuple[tuple[tuple[float, float], tuple[float, float]], ...]

    @property
    def trials(self) -> int:
        return len(self.distances)

    @property
    def closer(self) -> float:
        """Fraction of answers (two per trial) closer to their own context's truth than to the other's."""
        return sum(own < other for pair in self.distances for own, other in pair) / (2 * self.trials)

    @property
    def both_closer(self) -> float:
        """Fraction of trials where both answers are closer to their own truth: the test's criterion."""
        return sum(all(own < other for own, other in pair) for pair in self.distances) / self.trials

    def as_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "closer": self.closer, "both_closer": self.both_closer,
                "distances": [list(map(list, pair)) for pair in self.distances]}


def twin_cases(task: Task, trial: int, *, num_pairs: int, seed: int) -> tuple[Case, Case]:
    """Two cases with the same inputs and query, from two instances of ``task`` whose query targets differ."""
    trial_seed = mix_seed(seed, trial)
    first = _case(task, task.instance(context_seed(trial_seed, 0)), num_pairs, trial_seed)
    if first.instance is task:
        raise LavinError(f"task {task.name!r} does not draw its instance per context (try style='drawn')")
    for draw in range(1, 1 + _REDRAWS):  # a small family (5 channel orders) can draw the same map twice
        second = _case(task, task.instance(context_seed(trial_seed, draw)), num_pairs, trial_seed)
        same_inputs = torch.equal(first.query, second.query) and all(
            torch.equal(p.input, q.input) for p, q in zip(first.pairs, second.pairs))
        if not same_inputs:
            raise LavinError(f"task {task.name!r} draws other inputs for other instances; the test needs one query")
        if not torch.equal(first.target, second.target):
            return first, second
    raise LavinError(f"{_REDRAWS} instances of {task.name!r} gave the same target as the first in trial {trial}; "
                     "its hidden parameter does not change the answer")


#: How many second instances ``twin_cases`` tries before it gives up.
_REDRAWS = 16


def _case(task: Task, instance: Task, num_pairs: int, example_seed: int) -> Case:
    *pairs, query = examples_between(instance, 0, num_pairs + 1, example_seed)
    return Case(task=task.name, pairs=[e.pair for e in pairs], query=query.pair.input,
                target=query.pair.target, answer=query.answer, instance=instance)


def _distance(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x.float().clamp(-1, 1) - y.float()).square().mean())


def context_reading(pipe, task: Task, *, trials: int = 8, num_pairs: int = 3, seed: int = EVAL_SEED,
                    **options: Any) -> ContextReading:
    """Run the two-context test ``trials`` times on ``pipe`` (anything ``predict`` can call).

    ``options`` go to ``predict`` (``num_steps``, ``guidance_scale``, ``temperature``, ``progress``).
    """
    if trials < 1 or num_pairs < 1:
        raise ValueError(f"trials and num_pairs must be at least 1, got trials={trials}, num_pairs={num_pairs}")
    twins = [twin_cases(task, k, num_pairs=num_pairs, seed=seed) for k in range(trials)]
    predictions = predict(pipe, [case for pair in twins for case in pair], seed=seed, **options)
    distances = []
    for k, (a, b) in enumerate(twins):
        pa, pb = predictions[2 * k], predictions[2 * k + 1]
        distances.append(((_distance(pa, a.target), _distance(pa, b.target)),
                          (_distance(pb, b.target), _distance(pb, a.target))))
    return ContextReading(distances=tuple(distances))

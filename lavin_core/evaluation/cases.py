"""Shared by ``lavin demo`` and ``lavin bench``: test cases from the task generators, model
predictions with one progress bar, training-free baselines, and scoring.

    >>> cases = draw_cases(registry.get_task("depth"), 4, num_pairs=3, seed=EVAL_SEED)
    >>> predictions = predict(pipe, cases, seed=EVAL_SEED)
    >>> samples = predict_samples(pipe, cases, 5)                     # 5 per case
    >>> combine_samples(task, samples[0])                             # the task's consensus of case 0
    >>> score(task, predictions[0], cases[0].answer)                 # {"abs_rel": ..., "delta1": ...}
    >>> score(task, BASELINES["copy_query"](cases[0]), cases[0].answer)

Cases come from ``task.examples(count * (num_pairs + 1), seed=seed)``: each consecutive group of
``num_pairs + 1`` examples gives the example pairs and, last, the query with its true answer.
A task drawn per context makes case ``k`` with its instance ``task.instance(context_seed(seed, k))``
(the same group of examples, drawn by that instance), and the case keeps the instance: its
``read`` and ``score`` are the ones that judge predictions for that case.
Training draws its examples with 63-bit seeds mixed from ``(run seed, sample index)``
(``lavin_core.data.loader.mix_seed``), so a small fixed seed such as ``EVAL_SEED`` = 2026 gives examples
the model never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from lavin_core.context import Example, ExamplePair, TaskContext
from lavin_core.data.instances import varies
from lavin_core.errors import LavinError
from lavin_core.interfaces import Task
from lavin_core.pipeline.ensemble import combine_samples
from lavin_core.seeds import context_seed

#: The default seed of demo and bench examples (never one training uses; see the module docstring).
EVAL_SEED = 2026


@attrs.frozen
class Case:
    """One test: example pairs, a query ``(3, T, H, W)``, its target pixels and its true answer,
    and the task instance that drew them (``read`` and ``score`` predictions with it)."""

    task: str
    pairs: tuple[ExamplePair, ...] = attrs.field(converter=tuple)
    query: Tensor
    target: Tensor
    answer: Any
    instance: Task | None = attrs.field(default=None, eq=False)

    def context(self) -> TaskContext:
        return TaskContext(task=self.task, pairs=self.pairs, query=self.query)

    def with_pairs(self, num_pairs: int) -> Case:
        """The case with only its first ``num_pairs`` pairs (the ``--num-pairs`` sweep)."""
        if not 1 <= num_pairs <= len(self.pairs):
            raise ValueError(f"num_pairs must be between 1 and {len(self.pairs)}, got {num_pairs}")
        return attrs.evolve(self, pairs=self.pairs[:num_pairs])


def draw_cases(task: Task, count: int, *, num_pairs: int, seed: int = EVAL_SEED) -> list[Case]:
    """``count`` cases of ``task`` with ``num_pairs`` example pairs each, all from ``seed``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be at least 1, got {num_pairs}")
    group = num_pairs + 1
    if not varies(task):
        examples = list(task.examples(count * group, seed=seed))
        if len(examples) < count * group:
            raise ValueError(f"task {task.name!r} gave {len(examples)} examples, {count * group} are needed")
        return [_case(task, examples[k * group : (k + 1) * group]) for k in range(count)]
    cases = []
    for k in range(count):
        instance = task.instance(context_seed(seed, k))
        cases.append(_case(instance, examples_between(instance, k * group, (k + 1) * group, seed)))
    return cases


def _case(task: Task, examples: Sequence[Example]) -> Case:
    *pairs, query = examples
    return Case(task=task.name, pairs=[e.pair for e in pairs], query=query.pair.input,
                target=query.pair.target, answer=query.answer, instance=task)


def examples_between(task: Task, start: int, stop: int, seed: int) -> list[Example]:
    """Items ``start`` to ``stop`` of ``task.examples(stop, seed=seed)`` (made alone where the task can)."""
    if callable(getattr(task, "example", None)):
        return [task.example(index, seed=seed) for index in range(start, stop)]
    examples = list(task.examples(stop, seed=seed))[start:stop]
    if len(examples) < stop - start:
        raise ValueError(f"task {task.name!r} gave too few examples: {stop} are needed")
    return examples


# ---------------------------------------------------------------------------------------------
# baselines: predictions that need no training, each (3, T, H, W) like the target


def copy_query(case: Case) -> Tensor:
    """The query itself (for a clip task: the query clip)."""
    return case.query


def mean_of_targets(case: Case) -> Tensor:
    """The pixel mean of the example targets."""
    return torch.stack([pair.target for pair in case.pairs]).mean(dim=0)


def nearest_target(case: Case) -> Tensor:
    """The target of the example whose input is nearest to the query (pixel L2; the first on ties)."""
    distances = torch.stack([(pair.input.float() - case.query.float()).square().sum() for pair in case.pairs])
    return case.pairs[int(torch.argmin(distances))].target


def blurred_query(case: Case, sigma: float = 1.0) -> Tensor:
    """The query under a Gaussian blur of ``sigma`` pixels: a blurry answer that learned nothing,
    so that a model whose output is merely soft cannot win by accident."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    taps = taps / taps.sum()
    frames = case.query.float().permute(1, 0, 2, 3)  # (T, 3, H, W): each frame on its own
    for kernel in (taps.view(1, 1, 1, -1), taps.view(1, 1, -1, 1)):
        pad = (radius, radius, 0, 0) if kernel.shape[-1] > 1 else (0, 0, radius, radius)
        frames = F.conv2d(F.pad(frames, pad, mode="reflect"), kernel.expand(3, 1, *kernel.shape[2:]), groups=3)
    return frames.permute(1, 0, 2, 3).contiguous().to(case.query.dtype)


#: Baseline name -> prediction function, in the order tables show them.
BASELINES: dict[str, Callable[[Case], Tensor]] = {
    "copy_query": copy_query,
    "blurred_query": blurred_query,
    "mean_of_targets": mean_of_targets,
    "nearest_target": nearest_target,
}


# ---------------------------------------------------------------------------------------------
# the model


def predict(pipe, cases: Sequence[Case], **options: Any) -> list[Tensor]:
    """The pipeline's prediction ``(3, T, H, W)`` for each case, in order: one sample each.

    ``options`` are ``predict_samples``'s (``seed``, ``num_steps``, ``guidance_scale``,
    ``temperature``, ``batch_size``, ``progress``, ``desc``).
    """
    return [samples[0] for samples in predict_samples(pipe, cases, 1, **options)]


def predict_samples(
    pipe,
    cases: Sequence[Case],
    num_samples: int,
    *,
    seed: int = EVAL_SEED,
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    temperature: float | None = None,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "lavin",
) -> list[list[Tensor]]:
    """``num_samples`` predictions ``(3, T, H, W)`` for each case, in order.

    One pipeline call: each case's context is encoded once, and rows of one shape are sampled
    ``batch_size`` at a time, with one progress bar over all of them. The noise comes from one
    generator seeded with ``seed``, drawn sample by sample and case by case, so the first samples
    are exactly ``predict``'s and a larger ensemble only adds samples. Cases are scored at their
    own size (no processing size).
    """
    out = pipe([case.context() for case in cases], num_samples=num_samples, seed=seed, num_steps=num_steps,
               guidance_scale=guidance_scale, temperature=temperature, processing_size=0,
               batch_size=batch_size, progress=desc if progress else False)
    return [list(samples) for samples in out.samples]


# ---------------------------------------------------------------------------------------------
# scores


def score(task: Task, prediction: Tensor, answer: Any) -> dict[str, float]:
    """Every metric of ``task`` for predicted pixels ``(3, T, H, W)``, read back into an answer."""
    scores = task.score(task.read(prediction.float().clamp(-1, 1)), answer)
    return {name: float(scores[name]) for name in task.metrics}


def mean_scores(scores: Sequence[dict[str, float]], metrics: Sequence[str]) -> dict[str, float]:
    """The mean of each metric over cases, ignoring NaNs (NaN when every case is NaN)."""
    out = {}
    for name in metrics:
        values = [s[name] for s in scores if not math.isnan(s[name])]
        out[name] = sum(values) / len(values) if values else math.nan
    return out


def better(a: float, b: float, *, higher_is_better: bool) -> bool:
    """Whether score ``a`` is strictly better than ``b`` (never when either is NaN)."""
    if math.isnan(a) or math.isnan(b):
        return False
    return a > b if higher_is_better else a < b


def json_ready(value: Any) -> Any:
    """``value`` with NaN floats as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return value


def buildable_tasks(size: int, options: dict[str, dict[str, Any]] | None = None) -> tuple[list[str], dict[str, str]]:
    """Every registered task that builds from ``size`` and its ``options`` (task name -> keyword
    options), and, for each one that does not (e.g. ``folder`` needs a path), the reason."""
    import registry

    names, failed = [], {}
    for name in registry.list_tasks():
        try:
            build_task(name, size=size, options=(options or {}).get(name, {}))
        except (LavinError, TypeError, ValueError) as exc:
            failed[name] = str(exc)
            continue
        names.append(name)
    return names, failed


def build_task(name: str, *, size: int, options: dict[str, Any] | None = None) -> Task:
    """``registry.get_task(name, size=size, **options)``, with a one-line error naming the task and its options."""
    import registry

    options = dict(options or {})
    options.setdefault("size", size)
    try:
        return registry.get_task(name, **options)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise LavinError(f"task {name!r} cannot be built with {given}: {exc}; `lavin tasks` lists its options") from exc

"""Combining several sampled answers to one query into one answer (test-time ensembling).

A diffusion model draws one plausible answer per noise sample. Scored against a single truth,
a consensus of a few samples beats any one of them: the mean for answers that average (images,
depth, the Marigold recipe), the per-coordinate median for point sets, and for everything else
the minimum-Bayes-risk choice, the sample that scores best against all the others with the
task's own main metric. ``Task.combine`` picks one of these per task (MBR by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _stack(answers: Sequence[Any]) -> np.ndarray:
    if not answers:
        raise ValueError("nothing to combine: pass at least one answer")
    return np.stack([np.asarray(answer) for answer in answers])


def mean_answer(answers: Sequence[Any]) -> np.ndarray:
    """The elementwise mean, in the answers' float dtype."""
    stacked = _stack(answers)
    return stacked.mean(axis=0).astype(stacked.dtype if stacked.dtype.kind == "f" else np.float32)


def unit_mean_answer(answers: Sequence[Any]) -> np.ndarray:
    """The mean of unit vectors along the last axis, scaled back to unit length."""
    mean = mean_answer(answers)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-6).astype(mean.dtype)


def median_answer(answers: Sequence[Any]) -> np.ndarray:
    """The elementwise median ignoring NaN (missing points); NaN only where every answer has NaN."""
    stacked = _stack(answers).astype(np.float32)
    out = np.full(stacked.shape[1:], np.nan, np.float32)
    found = ~np.all(np.isnan(stacked), axis=0)
    out[found] = np.nanmedian(stacked[:, found], axis=0)
    return out


def minimum_bayes_risk(
    answers: Sequence[Any], agreement: Callable[[Any, Any], float], *, higher_is_better: bool = True
) -> Any:
    """The answer that agrees best with the others: the sum of ``agreement(candidate, other)``
    over the other answers (NaN counts as the worst), maximised (or minimised when
    ``higher_is_better`` is False). Ties go to the earliest answer, so one answer is returned as is."""
    if not answers:
        raise ValueError("nothing to combine: pass at least one answer")
    sign = 1.0 if higher_is_better else -1.0
    best, best_total = 0, -math.inf
    for i, candidate in enumerate(answers):
        total = 0.0
        for j, other in enumerate(answers):
            if i != j:
                value = float(agreement(candidate, other))
                total += sign * value if math.isfinite(value) else -1e30
        if total > best_total:
            best, best_total = i, total
    return answers[best]

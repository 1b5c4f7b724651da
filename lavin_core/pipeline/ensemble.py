"""Several samples of one query -> one prediction.

A registered task combines in answer space: every sample is read into an answer, the task's
``combine`` picks the consensus (mean, median, or the minimum-Bayes-risk sample, see
``lavin_core.ensemble``), and ``render`` draws it again. Without a task the samples are averaged
pixel by pixel, which is right for images and clips and what Marigold does for depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lavin_core.interfaces import Task


def combine_samples(task: Task | None, samples: Sequence[Tensor]) -> Tensor:
    """One prediction ``(3, T, H, W)`` from samples of one query (a single sample comes back as is)."""
    if not samples:
        raise ValueError("nothing to combine: pass at least one sample")
    if len(samples) == 1:
        return samples[0]
    if task is None:
        return torch.stack([s.float() for s in samples]).mean(0)
    answers = [task.read(sample.float().clamp(-1, 1)) for sample in samples]
    return task.render(task.combine(answers))

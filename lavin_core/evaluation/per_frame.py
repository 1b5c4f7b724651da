"""The per-frame baseline of a video task: the same model run on each frame alone, as an image task.

For a clip case, frame ``t`` becomes an image case whose example pairs are frame ``t`` of each
example input and target and whose query is frame ``t`` of the query; the model's answers to
those image cases are stacked back into a clip. Comparing the model on whole clips against this
shows whether joint space-time attention pays, above all on the temporal metrics: the per-frame
model never sees the neighbouring frames, so nothing keeps its answers from flickering.

Only frame-aligned tasks have it (targets with as many frames as inputs, more than one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lavin_core.context import ExamplePair
from lavin_core.evaluation.cases import Case, combine_samples, predict_samples
from lavin_core.interfaces import Task

#: The column name of this baseline in bench tables.
PER_FRAME = "per_frame_model"


def has_per_frame_baseline(case: Case) -> bool:
    """Whether ``case`` is a clip task whose target frames match its query's one to one."""
    frames = case.query.shape[1]
    return frames > 1 and case.target.shape[1] == frames and all(p.target.shape[1] == frames for p in case.pairs)


def frame_cases(case: Case) -> list[Case]:
    """One image case per frame of a clip case (the answer is left out: frames are scored as a clip)."""
    return [
        Case(task=case.task, pairs=[ExamplePair(input=p.input[:, t:t + 1], target=p.target[:, t:t + 1]) for p in case.pairs],
             query=case.query[:, t:t + 1], target=case.target[:, t:t + 1], answer=None)
        for t in range(case.query.shape[1])
    ]


def per_frame_predictions(pipe, task: Task, cases: Sequence[Case], ensemble_size: int = 1, **options) -> list[Tensor]:
    """The per-frame model's clip ``(3, T, H, W)`` for each case: every frame predicted alone.

    ``ensemble_size`` samples are drawn per frame; sample ``k`` of every frame makes clip ``k``,
    and the task combines the clips as it combines the model's own (``combine_samples``).
    ``options``: ``predict_samples``'s (``seed``, ``num_steps``, ``guidance_scale``, ...).
    """
    frames = [frame_cases(case) for case in cases]
    flat = [frame for clip in frames for frame in clip]
    samples = predict_samples(pipe, flat, ensemble_size, desc=options.pop("desc", "per-frame"), **options)
    out, position = [], 0
    for clip in frames:
        per_frame = samples[position:position + len(clip)]  # [frame][sample] -> (3, 1, H, W)
        position += len(clip)
        clips = [torch.cat([frame[k] for frame in per_frame], dim=1) for k in range(ensemble_size)]
        out.append(combine_samples(task, clips))
    return out

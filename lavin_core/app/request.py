"""What one click of Predict asks for, and what comes back; plain values, no Gradio."""

from __future__ import annotations

from typing import Any

import attrs
from torch import Tensor

#: Where the example pairs come from.
PAIRS_FROM_TASK, PAIRS_FROM_UPLOADS, PAIRS_FROM_TEMPLATE = "task examples", "my uploads", "template folder"
PAIR_SOURCES = (PAIRS_FROM_TASK, PAIRS_FROM_UPLOADS, PAIRS_FROM_TEMPLATE)
#: The task choice of a user who brings their own pairs and names no registered task.
NO_TASK = "(none: my own pairs)"
#: At most this many example pairs in a context (the paper trains with 1 to 8).
MAX_PAIRS = 8


@attrs.frozen(kw_only=True)
class GroundTruth:
    """The true answer of a generated query: the task it came from, the query's pixels as shown
    (``(H, W, 3)`` uint8, to recognise it when it comes back from the page) and the answer."""

    task: str
    image: Any
    answer: Any
    target: Tensor


@attrs.frozen(kw_only=True)
class AppRequest:
    """One prediction. ``task`` is a registered task name or ``NO_TASK``; ``uploads`` are the paths
    of uploaded pair files (``NAME_input.png`` / ``NAME_target.png``); ``template`` a template folder;
    ``query`` the path of the query image. ``resize`` fits the query to the model's size first.
    None settings mean the model's defaults."""

    pair_source: str = attrs.field(validator=attrs.validators.in_(PAIR_SOURCES))
    task: str
    query: str | None
    uploads: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    template: str | None = None
    num_pairs: int = 3
    resize: bool = True
    num_steps: int | None = None
    guidance_scale: float | None = None
    num_samples: int | None = None
    seed: int = 0
    truth: GroundTruth | None = None


@attrs.frozen(kw_only=True)
class AppResult:
    """A prediction ``(3, T, H, W)``, the context it came from, the PNG written for download, the
    metrics when the query's ground truth is known (name -> (model, copy-the-query baseline)) with
    the true target pixels, and a one-line summary."""

    prediction: Tensor
    pairs: tuple[Any, ...]
    query: Tensor
    png: str
    metrics: dict[str, tuple[float, float]]
    truth: Tensor | None
    higher_is_better: dict[str, bool]
    summary: str

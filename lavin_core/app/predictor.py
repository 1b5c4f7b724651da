"""The one model of an app server and the prediction behind the page's Predict button.

``Predictor.predict(request, progress)`` reads the user's files, builds the context, samples
(one call at a time: a lock guards the model even if the web queue let two through), combines an
ensemble through the task, scores the prediction when the query's ground truth is known, and
writes the PNG offered for download. Bad input raises a one-line ``LavinError`` / ``ValueError``,
the same messages as ``lavin run``; the page shows them.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable

import attrs
import numpy as np
import torch

from lavin_core.app.request import (
    MAX_PAIRS, NO_TASK, PAIRS_FROM_TASK, PAIRS_FROM_TEMPLATE, PAIRS_FROM_UPLOADS, AppRequest, AppResult,
)
from lavin_core.app.uploads import read_query, read_uploaded_pairs
from lavin_core.context import TaskContext
from lavin_core.data.images import check_size, fit_size, resize, save_image, to_uint8
from lavin_core.errors import LavinError
from lavin_core.evaluation.cases import combine_samples, score
from lavin_core.pipeline import InContextPipeline
from lavin_core.pipeline.inputs import task_pairs

#: ``progress(done, total)`` in sampling steps.
Progress = Callable[[int, int], None]
#: At most this many samples per query from the page (each costs a full sampling run).
MAX_SAMPLES = 16
#: Predictions kept in ``out_dir``; the web server serves its own copy of each, so older ones go.
KEEP = 32


@attrs.frozen(kw_only=True)
class ModelInfo:
    """What the page says about its model: a name, the side it was trained at (None: unknown), the
    number of samples it recommends combining and the tasks it was trained on (listed first)."""

    name: str
    image_size: int | None = None
    ensemble_size: int = 1
    trained_tasks: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def side(self) -> int:
        """The side tasks and scenes are drawn at: the trained one, else 64 (the built-in tasks' default)."""
        return self.image_size or 64


class Predictor:
    """One pipeline, loaded once, shared by every request; predictions go to ``out_dir``."""

    def __init__(self, pipe: InContextPipeline, info: ModelInfo, out_dir: str | os.PathLike):
        self.pipe, self.info = pipe, info
        self.out_dir = os.fspath(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._count = itertools.count(1)

    # -- the parts of one prediction ------------------------------------------------------------

    def query_size(self, height: int, width: int) -> tuple[int, int]:
        """The size a query is fitted to: its longer side the model's trained side, both sides
        multiples of what the model takes."""
        scale = 1.0 if self.info.image_size is None else self.info.image_size / max(height, width)
        return fit_size(round(height * scale), round(width * scale), self.pipe.size_multiple)

    def task(self, name: str, size: tuple[int, int]):
        """The registered task ``name`` at ``size``, or None for ``NO_TASK``."""
        import registry

        if name == NO_TASK:
            return None
        try:
            return registry.get_task(name, size=size)
        except (TypeError, ValueError) as err:
            if isinstance(err, LavinError):
                raise
            raise ValueError(f"task {name!r} cannot draw {size[1]}x{size[0]} examples ({err}); "
                             f"keep 'fit the query to the model' on, or bring your own pairs") from None

    def pairs(self, request: AppRequest, task, query: torch.Tensor):
        size = tuple(query.shape[-2:])
        if request.pair_source == PAIRS_FROM_TASK:
            if task is None:
                raise ValueError("pairs from task examples need a task: choose one in the task list")
            return task_pairs(task, query, request.num_pairs, seed=request.seed)
        if request.pair_source == PAIRS_FROM_UPLOADS:
            return read_uploaded_pairs(request.uploads, size=size, limit=MAX_PAIRS)
        from lavin_core.data.templates import read_template_folder

        if not request.template:
            raise ValueError("no template folder chosen: pick one in the list (start the app with --templates DIR)")
        return read_template_folder(request.template, size=size, limit=request.num_pairs)

    def num_samples(self, request: AppRequest, task) -> int:
        samples = request.num_samples or (self.info.ensemble_size if task is not None else 1)
        if samples > 1 and task is None:
            raise ValueError(f"{samples} samples need a registered task to combine them into one answer; "
                             f"choose the task your pairs show, or set samples to 1")
        return samples

    # -- the prediction -------------------------------------------------------------------------

    def predict(self, request: AppRequest, progress: Progress | None = None) -> AppResult:
        """The prediction for ``request`` (see the module docstring)."""
        check_request(request)
        started = time.perf_counter()
        query = read_query(request.query)
        shown = to_uint8(query)[0]
        if request.resize:
            query = resize(query, self.query_size(*query.shape[-2:]))
        check_size(query, self.pipe.size_multiple, "the query")
        task = self.task(request.task, tuple(query.shape[-2:]))
        pairs = self.pairs(request, task, query)
        samples = self.num_samples(request, task)
        pipe = self._pipeline_for(request.num_steps)
        steps = len(pipe.sampler.timesteps(request.num_steps)) - 1
        context = TaskContext(task=request.task if task is not None else "custom", pairs=pairs, query=query)
        done = itertools.count(1)
        with self._lock:
            out = pipe(
                [context] * samples,  # one batch; the generator gives each copy its own noise
                num_steps=request.num_steps,
                guidance_scale=request.guidance_scale,
                generator=torch.Generator().manual_seed(request.seed),
                progress=False,
                callback=None if progress is None else lambda *_: progress(next(done), steps),
            )
        prediction = combine_samples(task, out.predictions) if samples > 1 else out.predictions[0]
        metrics = {}
        truth = request.truth
        if task is not None and truth is not None and truth.task == request.task and np.array_equal(truth.image, shown):
            ours, copy = score(task, prediction, truth.answer), score(task, query, truth.answer)
            metrics = {name: (ours[name], copy[name]) for name in task.metrics}
        png = self._write(prediction, request.task if task is not None else "custom")
        height, width = prediction.shape[-2:]
        combined = f", {samples} samples combined" if samples > 1 else ""
        summary = (f"{width}x{height} prediction from {len(pairs)} example pairs, {steps} steps{combined}, "
                   f"seed {request.seed}, in {time.perf_counter() - started:.1f} s")
        return AppResult(prediction=prediction, pairs=tuple(pairs), query=query, png=png, metrics=metrics,
                         truth=truth.target if metrics else None,
                         higher_is_better=dict(task.higher_is_better) if task is not None else {}, summary=summary)

    def _pipeline_for(self, num_steps: int | None) -> InContextPipeline:
        """The pipeline, on a grid that has ``num_steps``: the official grid exists for 19, 29 and 39
        steps only, so other counts use the shifted grid (uniform steps bent towards the noise end,
        as the official grid is). The models are shared, never copied."""
        try:
            self.pipe.sampler.timesteps(num_steps)
            return self.pipe
        except ValueError:
            if not attrs.has(type(self.pipe.sampler)) or not hasattr(self.pipe.sampler, "schedule"):
                raise
        sampler = attrs.evolve(self.pipe.sampler, schedule="shifted")
        return InContextPipeline(self.pipe.encoder, self.pipe.denoiser, sampler,
                                 guidance_scale=self.pipe.guidance_scale, temperature=self.pipe.temperature)

    def _write(self, prediction: torch.Tensor, label: str) -> str:
        """The prediction as a PNG in ``out_dir``, written under a temporary name and renamed."""
        # numbered first, so that name order is age order
        path = os.path.join(self.out_dir, f"lavin-{next(self._count):06d}-{label}.png")
        partial = os.path.join(self.out_dir, f".{os.path.basename(path)}.partial")
        save_image(prediction, partial)
        os.replace(partial, path)
        written = sorted((e for e in os.scandir(self.out_dir) if e.name.startswith("lavin-")), key=lambda e: e.name)
        for entry in written[:-KEEP]:
            os.remove(entry.path)
        return path


def check_request(request: AppRequest) -> None:
    """One-line errors for settings out of range (the page's sliders keep to them; the API may not)."""
    if not 1 <= request.num_pairs <= MAX_PAIRS:
        raise ValueError(f"example pairs must be 1 to {MAX_PAIRS}, got {request.num_pairs}")
    if request.num_steps is not None and request.num_steps < 1:
        raise ValueError(f"steps must be a positive integer, got {request.num_steps}")
    guidance = request.guidance_scale
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number >= 0 (1 turns it off), got {guidance}")
    if request.num_samples is not None and not 1 <= request.num_samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be 1 to {MAX_SAMPLES}, got {request.num_samples}")
    if request.seed < 0:
        raise ValueError(f"the seed must be >= 0, got {request.seed}")

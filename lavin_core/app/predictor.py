"""The one model of an app server and the prediction behind the page's Predict button.

``Predictor.predict(request, progress)`` reads the user's files, builds the context at the
model's processing size, samples (one call at a time: a lock guards the model even if the web
queue let two through; an ensemble is drawn and combined by the task inside the pipeline), scores
the prediction when the query's ground truth is known, and writes the PNG offered for download.
Bad input raises a one-line ``LavinError`` / ``ValueError``, the same messages as ``lavin run``;
the page shows them.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from lavin_core.app.request import (
    MAX_PAIRS, NO_TASK, PAIRS_FROM_TASK, PAIRS_FROM_UPLOADS, AppRequest, AppResult,
)
from lavin_core.app.uploads import read_query, read_uploaded_pairs
from lavin_core.data.images import check_size, resize, to_uint8
from lavin_core.data.outputs import save_image
from lavin_core.evaluation.cases import score
from lavin_core.pipeline import InContextPipeline
from lavin_core.app.queries import task_instance
from lavin_core.pipeline.inputs import task_at, task_pairs
from lavin_core.samplers.options import SamplingOptions

#: ``progress(done, total)`` in sampling steps.
Progress = Callable[[int, int], None]
#: At most this many samples per query from the page (each costs a full sampling run).
MAX_SAMPLES = 16
#: Predictions kept in ``out_dir``; the web server serves its own copy of each, so older ones go.
KEEP = 32
#: The side tasks and scenes are drawn at when the model names no processing size.
DEFAULT_SIDE = 64


class Predictor:
    """One pipeline, loaded once, shared by every request; predictions go to ``out_dir``.
    ``name`` is what the page calls the model (default: its folder's name)."""

    def __init__(self, pipe: InContextPipeline, out_dir: str | os.PathLike, *, name: str | None = None):
        self.pipe = pipe
        folder = pipe.folder
        self.name = name or (folder.name if folder is not None else "custom checkpoints")
        #: The tasks the model was trained on (the page lists them first).
        self.trained_tasks: tuple[str, ...] = (folder.trained_tasks or ()) if folder is not None else ()
        self.out_dir = os.fspath(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._count = itertools.count(1)

    @property
    def side(self) -> int:
        """The longer side queries are processed at (the model's size), scenes drawn at."""
        return self.pipe.defaults.processing_size or DEFAULT_SIDE

    @property
    def ensemble_size(self) -> int:
        return self.pipe.defaults.num_samples or 1

    @property
    def num_steps(self) -> int:
        """The sampler steps the model recommends, else the sampler's own count."""
        return self.pipe.step_count()

    def options(self, request: AppRequest, *, combining: bool) -> SamplingOptions:
        """The request's settings over the model's defaults, checked once (``SamplingOptions``)."""
        check_request(request)
        given = SamplingOptions(num_steps=request.num_steps, guidance_scale=request.guidance_scale,
                                num_samples=request.num_samples, seed=request.seed, num_pairs=request.num_pairs,
                                processing_size=None if request.resize else 0)
        return self.pipe.resolve(given, combining=combining)

    def pairs(self, request: AppRequest, task, query: torch.Tensor, options: SamplingOptions):
        """The example pairs at ``query``'s size (the processing size)."""
        size = tuple(query.shape[-2:])
        if request.pair_source == PAIRS_FROM_TASK:
            if task is None:
                raise ValueError("pairs from task examples need a task: choose one in the task list")
            return task_pairs(task, query, options.num_pairs, seed=request.seed)
        if request.pair_source == PAIRS_FROM_UPLOADS:
            return read_uploaded_pairs(request.uploads, size=size, limit=MAX_PAIRS)
        from lavin_core.data.templates import read_template_folder

        if not request.template:
            raise ValueError("no template folder chosen: pick one in the list (start the app with --templates DIR)")
        return read_template_folder(request.template, size=size, limit=options.num_pairs)

    def predict(self, request: AppRequest, progress: Progress | None = None) -> AppResult:
        """The prediction for ``request`` (see the module docstring)."""
        started = time.perf_counter()
        registered = request.task != NO_TASK
        options = self.options(request, combining=registered)
        query = read_query(request.query)
        if options.processing_size == 0:
            check_size(query, self.pipe.size_multiple, "the query")
        size = self.pipe.processing_shape(*query.shape[-2:], options.processing_size)
        task = task_instance(task_at(request.task, size)) if registered else None
        pairs = self.pairs(request, task, resize(query, size), options)
        steps = self.pipe.step_count(options)
        done = itertools.count(1)
        with self._lock:
            out = self.pipe(pairs=pairs, query=query, task=task, options=options, progress=False,
                            callback=None if progress is None else lambda *_: progress(min(next(done), steps), steps))
        prediction = out.predictions[0]
        metrics, truth = {}, request.truth
        if task is not None and truth is not None and truth.task == request.task \
                and np.array_equal(truth.image, to_uint8(query)[0]):
            ours, copy = score(task, prediction, truth.answer), score(task, query, truth.answer)
            metrics = {name: (ours[name], copy[name]) for name in task.metrics}
        png = self._write(prediction, request.task if registered else "custom")
        height, width = prediction.shape[-2:]
        samples = len(out.samples[0]) if out.samples else 1
        combined = f", {samples} samples combined" if samples > 1 else ""
        processed = f" (processed at {size[1]}x{size[0]})" if tuple(size) != (height, width) else ""
        summary = (f"{width}x{height} prediction{processed} from {len(pairs)} example pairs, {steps} steps{combined}, "
                   f"seed {options.seed}, in {time.perf_counter() - started:.1f} s")
        return AppResult(prediction=prediction, pairs=tuple(pairs), query=query, png=png, metrics=metrics,
                         truth=truth.target if metrics else None,
                         higher_is_better=dict(task.higher_is_better) if task is not None else {}, summary=summary)

    def _write(self, prediction: torch.Tensor, label: str) -> str:
        """The prediction as a PNG in ``out_dir`` (``save_image`` writes it atomically)."""
        # numbered first, so that name order is age order
        path = os.path.join(self.out_dir, f"lavin-{next(self._count):06d}-{label}.png")
        save_image(prediction, path)
        written = sorted((e for e in os.scandir(self.out_dir) if e.name.startswith("lavin-")), key=lambda e: e.name)
        for entry in written[:-KEEP]:
            os.remove(entry.path)
        return path


def check_request(request: AppRequest) -> None:
    """The page's own bounds, beyond what ``SamplingOptions`` checks (its sliders keep to them; an
    API client may not)."""
    if not 1 <= request.num_pairs <= MAX_PAIRS:
        raise ValueError(f"example pairs must be 1 to {MAX_PAIRS}, got {request.num_pairs}")
    if request.num_samples is not None and not 1 <= request.num_samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be 1 to {MAX_SAMPLES}, got {request.num_samples}")

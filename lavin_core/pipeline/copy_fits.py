"""The context copy's per-context fits, run on worker threads while the J-DiT samples.

A fit (``context_copy.fit_context_copy``) reads a context's pairs alone, never the answer, so it
need not wait for sampling. Its small matrices keep about one core busy, and so do the tiny
J-DiT's steps: the fits run on worker threads beside the sampling (``lavin demo`` of
lavin-tiny-icl on a 2-core Xeon: 81 s with the fits after sampling, 72 s beside it). Each
context's fit draws from its own generator, ``mix_seed(seed, index)``, so the result does not
depend on which thread runs it, or when.

    >>> with CopyFits(contexts, seed) as fits:
    ...     pixels = sample_and_decode(...)
    ...     for query, fitted in fits.result():      # waits for the fits still running
    ...         apply_context_copy(samples, query, fitted)
    # leaving the block (an error, Ctrl-C) stops the threads after the fits they are in
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import Tensor

from lavin_core.context import TaskContext
from lavin_core.pipeline.context_copy import CopyFit, CopyMap, fit_context_copy
from lavin_core.seeds import mix_seed

#: Worker threads for the fits: two keep both cores of a small CPU busy once sampling is done.
THREADS = 2


class CopyFits:
    """``fit_context_copy`` of every context on ``threads`` worker threads started by ``with``."""

    def __init__(self, contexts: Sequence[TaskContext], seed: int, fit: CopyFit = CopyFit(), *,
                 threads: int = THREADS):
        self._contexts = list(contexts)
        self._seed = seed
        self._fit = fit
        self._fitted: dict[int, CopyMap | None] = {}
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        count = max(1, min(threads, len(self._contexts)))
        self._threads = [threading.Thread(target=self._run, args=(first, count), name=f"lavin-context-copy-{first}",
                                          daemon=True) for first in range(count)]

    def _run(self, first: int, step: int) -> None:
        try:
            for index in range(first, len(self._contexts), step):
                if self._stop.is_set():
                    return
                generator = torch.Generator().manual_seed(mix_seed(self._seed, index))
                self._fitted[index] = fit_context_copy(self._contexts[index].pairs, self._fit, generator=generator)
        except BaseException as error:  # handed to the caller by result()
            self._errors.append(error)
            self._stop.set()

    def __enter__(self) -> CopyFits:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._join()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def result(self) -> list[tuple[Tensor, CopyMap | None]]:
        """``(query, fit)`` per context, in order, once every fit is done; a fit's error is raised here."""
        self._join()
        if self._errors:
            raise self._errors[0]
        if len(self._fitted) != len(self._contexts):
            raise RuntimeError("the context copy's fits were stopped before they finished")
        return [(context.query, self._fitted[index]) for index, context in enumerate(self._contexts)]

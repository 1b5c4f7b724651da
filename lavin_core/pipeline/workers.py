"""Chunks of sampling (and of decoding) side by side on a CPU's threads.

A small J-DiT's step on a CPU is a chain of small operations: each one barely uses a second
thread, so one sampling loop keeps about one core busy (``lavin demo`` of lavin-tiny-icl: 85 s on
one thread, 81 s on two, on a 2-core Xeon). Two loops on two Python threads (PyTorch releases the
GIL inside its operations) keep both busy: 20 forwards of lavin-tiny-icl's J-DiT on a batch of 32
took 3.21 s one after the other and 2.42 s as two threads of 10, with 2 intra-op threads each
(2026-12-07, the same Xeon; ``benchmarks/bench_workers.py`` times the whole pipeline). Chunks are
independent (the ODE samplers draw no noise while sampling), so the answers are the same
whichever thread samples which chunk. Chunks are never split to make work for a second thread:
one context's 6 samples as two halves of 3 ran 0.64x as fast as one chunk of 6, and large
chunks (72 rows) halved to even out the threads gained nothing (0.97x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import nn

#: Sampling threads on a CPU (see the module docstring).
CPU_SAMPLING_WORKERS = 2

Item = TypeVar("Item")


def run_all(fn: Callable[[Item], object], items: Sequence[Item], *, workers: int) -> None:
    """``fn(item)`` for every item, on up to ``workers`` threads. The first error is raised once the
    calls already running have ended; the calls not yet started are dropped."""
    if workers < 2 or len(items) < 2:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="lavin-sample") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` or a part of it goes through ``torch.compile`` (``nn.Module.compile`` or a
    wrapper), which is called from one thread here."""
    return any(getattr(part, "_compiled_call_impl", None) is not None or type(part).__name__ == "OptimizedModule"
               for part in module.modules())


def cpu_workers(module: nn.Module, device: torch.device, *, ordered: bool = False) -> int:
    """Threads to run ``module``'s chunks on: ``CPU_SAMPLING_WORKERS`` on a CPU with two or more
    intra-op threads, else 1: a GPU runs one chunk at a time, ``ordered`` work (a step callback
    that expects the steps in order) runs in order, and a compiled module is called from one thread."""
    if device.type != "cpu" or ordered or torch.get_num_threads() < 2 or is_compiled(module):
        return 1
    return CPU_SAMPLING_WORKERS

"""CPU threads that fit the machine: how many, and how they wait.

Two things decide CPU speed when other work shares the machine:

- **How many threads.** ``torch`` starts one per core it sees, but a container may be limited to
  fewer by a cgroup CPU quota (``cpu.max``) or an affinity mask (``taskset``, ``docker --cpuset-cpus``).
  ``available_cores`` reads both; ``choose_threads`` takes ``--threads``, then ``LAVIN_NUM_THREADS``,
  then ``OMP_NUM_THREADS``, then the available cores.
- **How they wait.** OpenMP threads spin at every barrier by default (GNU OpenMP for about 300,000
  iterations). Alone on the machine that is harmless; beside one other busy process, a spinning
  thread burns the core its partner needs, and every parallel region waits for a thread the
  scheduler has parked. Measured here (2 cores, lavin-tiny J-DiT forward, batch 2) beside
  ``yes > /dev/null``: 3,295 ms a call spinning, 88 ms with ``OMP_WAIT_POLICY=PASSIVE``, 335 ms on
  one spinning thread. ``passive_waiting`` sets that default, which OpenMP reads only when it is
  first loaded, so it must run before ``torch`` is imported (``lavin_core/__init__.py`` calls it
  first thing). An explicit ``OMP_WAIT_POLICY`` (or Intel's ``KMP_BLOCKTIME``) is left alone.

Only the standard library here: this module runs before torch is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path

#: The environment variable that sets the thread count (as ``--threads`` does).
THREADS_ENV = "LAVIN_NUM_THREADS"


def passive_waiting(environ: MutableMapping[str, str] = os.environ) -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the user chose otherwise). Before ``import torch``."""
    if "KMP_BLOCKTIME" not in environ:
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def parse_cpu_max(text: str) -> float | None:
    """Cores granted by a cgroup v2 ``cpu.max`` line (``"200000 100000"`` -> 2.0); None for ``"max ..."`` or junk."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 ``cpu.max`` or v1 ``cfs_quota_us``); None if unlimited."""
    root = Path(root)
    try:
        return parse_cpu_max((root / "cpu.max").read_text())
    except OSError:
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cores(*, affinity: int | None = None, quota: float | None = None) -> int:
    """Cores this process may use: its affinity mask, capped by the cgroup quota (rounded up), at least 1.

    ``affinity`` and ``quota`` default to what the system says (tests pass them in).
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if quota is None:
        quota = cgroup_cpu_limit()
    cores = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cores)


def _positive(value: str | int, what: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ValueError(f"{what} must be a positive number of threads, got {value!r}; e.g. 1 or {available_cores()}")
    return count


def choose_threads(requested: int | str | None = None, *, environ: MutableMapping[str, str] = os.environ,
                   cores: int | None = None) -> int:
    """The thread count: ``requested`` (``--threads``), else ``$LAVIN_NUM_THREADS``, else ``$OMP_NUM_THREADS``,
    else the available cores. A value that is not a positive integer is a one-line ``ValueError``."""
    if requested is not None:
        return _positive(requested, "--threads")
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        if environ.get(name, "").strip():
            return _positive(environ[name].strip(), name)
    return available_cores() if cores is None else cores


def set_threads(count: int) -> None:
    """Use ``count`` intra-op threads in this process (torch, and so MKL and oneDNN)."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)

"""Progress a person can follow: JSON lines, TensorBoard when installed, a tqdm bar on rank 0.

``RUN_DIR/metrics.jsonl`` holds one object per logged step, e.g.
``{"step": 100, "loss": 0.41, "lr": 1e-4, "grad_norm": 0.8, "samples_per_s": 52.1, "time": ...}``;
``lavin plot-loss RUN_DIR`` draws it. On resume, lines after the resumed step are dropped so the
file tells one consistent story.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

from tqdm.auto import tqdm

from lavin_core.atomic import write_text

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every record of ``RUN_DIR/metrics.jsonl`` (a torn last line, from a crash, is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}; is it the folder of a `lavin train` run?")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    write_text(path, "".join(f"{line}\n" for line in keep))  # atomically: a kill here loses no history


class MetricsLogger:
    """Writes metrics on rank 0 (``enabled``) and shows a progress bar; other ranks do nothing."""

    def __init__(self, run_dir: str | Path, *, total_steps: int, start_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.tensorboard = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / METRICS_FILE
        _truncate_after(path, start_step)
        self.file = path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional
            pass
        else:
            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
        self._last_time, self._last_step = time.perf_counter(), start_step

    def log(self, step: int, values: Mapping[str, float], *, samples: int) -> None:
        """Record ``values`` at ``step``; ``samples`` processed since the previous call give the throughput."""
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = max(now - self._last_time, 1e-9)
        record = {"step": step, **{k: float(v) for k, v in values.items()},
                  "samples_per_s": samples / elapsed, "time": time.time()}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "time") and math.isfinite(value):
                    self.tensorboard.add_scalar(f"train/{key}", value, step)
        self.bar.update(step - self._last_step)
        self.bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4f}",
                             samples_s=f"{record['samples_per_s']:.1f}")
        self._last_time, self._last_step = now, step

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.bar.close()

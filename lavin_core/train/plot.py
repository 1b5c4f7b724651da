"""``lavin plot-loss RUN_DIR``: the loss curves of a run as a PNG, drawn with PIL.

One panel per loss series of ``metrics.jsonl`` (``loss`` first, then any other key with "loss"
in its name, e.g. a VAE's ``loss_recon``): the raw values in a light colour, a smoothed curve on
top. The y axis turns logarithmic when a positive series spans more than 20x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lavin_core.data.images import to_pixels
from lavin_core.data.outputs import save_image
from lavin_core.train.metrics import read_metrics

PANEL_SIZE = (900, 320)
MARGIN = (80, 30, 30, 50)  # left, top, right, bottom


def loss_series(records: Sequence[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """``{name: (steps, values)}`` for every loss key, ``loss`` first; non-finite values are left out."""
    names: list[str] = []
    for record in records:
        for key in record:
            if "loss" in key and key not in names:
                names.append(key)
    names.sort(key=lambda name: (name != "loss", name))
    series = {}
    for name in names:
        points = [(r["step"], r[name]) for r in records
                  if name in r and isinstance(r[name], int | float) and math.isfinite(r[name])]
        if points:
            series[name] = ([float(s) for s, _ in points], [float(v) for _, v in points])
    return series


def smooth(values: Sequence[float], weight: float = 0.6) -> list[float]:
    """Bias-corrected exponential smoothing (TensorBoard's), same length as ``values``."""
    out, average = [], 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** (i + 1)))
    return out


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _panel(name: str, steps: list[float], values: list[float]) -> Image.Image:
    width, height = PANEL_SIZE
    left, top, right, bottom = MARGIN
    image = Image.new("RGB", PANEL_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    log_scale = min(values) > 0 and max(values) / min(values) > 20
    f = math.log10 if log_scale else (lambda x: x)
    ys = [f(v) for v in values]
    x0, x1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * plot_w, top + (1 - (y - y0) / (y1 - y0)) * plot_h

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for tick in _ticks(y0, y1):
        _, py = to_px(x0, tick)
        draw.line([left, py, left + plot_w, py], fill=(230, 230, 230))
        label = f"{10 ** tick:.3g}" if log_scale else f"{tick:.3g}"
        draw.text((left - 8, py), label, fill="black", font=font, anchor="rm")
    for tick in _ticks(x0, x1):
        px, _ = to_px(tick, y0)
        draw.line([px, top + plot_h, px, top + plot_h + 4], fill="black")
        draw.text((px, top + plot_h + 8), f"{tick:.0f}", fill="black", font=font, anchor="mt")
    draw.text((left + plot_w / 2, height - 12), "step", fill="black", font=font, anchor="mm")
    scale = " (log scale)" if log_scale else ""
    draw.text((left, 10), f"{name}{scale}   last {values[-1]:.4g}   min {min(values):.4g}", fill="black", font=font)
    if len(steps) > 1:
        draw.line([to_px(x, y) for x, y in zip(steps, ys)], fill=(160, 190, 230), width=1)
        draw.line([to_px(x, y) for x, y in zip(steps, smooth(ys))], fill=(20, 70, 160), width=2)
    else:
        px, py = to_px(steps[0], ys[0])
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(20, 70, 160))
    return image


def plot_loss(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Draw the loss curves of ``run_dir`` into ``output`` (default ``RUN_DIR/loss.png``); returns its path."""
    series = loss_series(read_metrics(run_dir))
    if not series:
        raise ValueError(f"{Path(run_dir) / 'metrics.jsonl'} holds no loss values yet; train for a few steps first")
    panels = [_panel(name, steps, values) for name, (steps, values) in series.items()]
    sheet = Image.new("RGB", (PANEL_SIZE[0], PANEL_SIZE[1] * len(panels)), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (0, i * PANEL_SIZE[1]))
    output = Path(output) if output is not None else Path(run_dir) / "loss.png"
    save_image(to_pixels(np.asarray(sheet)), output)  # atomically; the extension picks the format
    return output

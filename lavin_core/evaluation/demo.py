"""``lavin demo``: in-context prediction on one fresh query per task, as a picture and a table.

    >>> rows = run_demo(load_pipeline("lavin-tiny"), DEMO_TASKS)
    >>> png, json_path = write_demo(rows, "lavin-demo", meta={"model": "lavin-tiny"})

Each row is one task: ``num_pairs`` example pairs and a query drawn from the task's generator
(``draw_cases``, seed 2026 by default, never used in training), the model's
prediction, and the ground truth. The grid shows them left to right; a clip task's row is a
strip of its frames, top to bottom, and each clip task also gets an animated GIF
(``TASK.gif``: query | prediction | ground truth, side by side). The JSON holds every metric of
the prediction and, for scale, of the copy-the-query baseline.
With scikit-image installed, restoration tasks get extra rows on its bundled sample photos.
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from lavin_core.atomic import write_bytes, write_text
from lavin_core.evaluation.cases import EVAL_SEED, Case, build_task, combine_samples, copy_query, draw_cases, json_ready, predict_samples, score
from lavin_core.data.images import to_pil
from lavin_core.data.outputs import save_image
from lavin_core.interfaces import Task

#: The tasks the demo shows when the model does not list the tasks it was trained on.
DEMO_TASKS = (
    "depth", "normals", "semantic_segmentation", "foreground_segmentation", "edges", "detection", "pose",
    "colorization", "denoising", "inpainting",
)
#: Restoration tasks that also get a row on scikit-image's sample photos, when it is installed.
PHOTO_TASKS = ("denoising", "inpainting", "colorization")
PHOTO_SUFFIX = " (photo)"


@attrs.frozen
class DemoRow:
    """One task of the demo: its case, the prediction ``(3, T, H, W)`` and both score dicts."""

    label: str
    task: Task
    case: Case
    prediction: Tensor
    scores: dict[str, float]
    copy_query_scores: dict[str, float]


def photos_available() -> bool:
    return importlib.util.find_spec("skimage") is not None


def demo_tasks(names: Sequence[str], *, size: int, photos: bool,
               options: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, Task]]:
    """``(row label, task)`` for each name (built with its ``options``), plus photo rows of
    ``PHOTO_TASKS`` when ``photos``."""
    options = options or {}
    rows = [(name, build_task(name, size=size, options=options.get(name))) for name in names]
    if photos:
        rows += [(name + PHOTO_SUFFIX, build_task(name, size=size, options={**options.get(name, {}), "source": "skimage"}))
                 for name in names if name in PHOTO_TASKS]
    return rows


def run_demo(
    pipe,
    tasks: Sequence[str],
    *,
    num_pairs: int = 3,
    seed: int = EVAL_SEED,
    size: int = 64,
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    temperature: float | None = None,
    ensemble_size: int = 1,
    photos: bool | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
) -> list[DemoRow]:
    """One row per task (and photo row): all queries are predicted in one batched call.

    ``ensemble_size``: samples per query, combined into one prediction by ``task.combine``.
    ``photos``: add rows on scikit-image's photos (None: when it is installed).
    ``task_options``: task name -> options its factory takes (``--task-option``).
    """
    if not tasks:
        raise ValueError("no tasks for the demo; name some with --tasks (see `lavin tasks`)")
    photos = photos_available() if photos is None else photos
    labelled = demo_tasks(tasks, size=size, photos=photos, options=task_options)
    cases = [draw_cases(task, 1, num_pairs=num_pairs, seed=seed)[0] for _, task in labelled]
    samples = predict_samples(pipe, cases, ensemble_size, seed=seed, num_steps=num_steps,
                                         guidance_scale=guidance_scale, temperature=temperature, progress=progress,
                                         desc="demo")
    predictions = [combine_samples(case.instance, s) for case, s in zip(cases, samples)]
    return [
        DemoRow(label=label, task=case.instance, case=case, prediction=prediction,
                scores=score(case.instance, prediction, case.answer),
                copy_query_scores=score(case.instance, copy_query(case), case.answer))
        for (label, _), case, prediction in zip(labelled, cases, predictions)
    ]


# ---------------------------------------------------------------------------------------------
# the grid


def frame_strip(pixels: Tensor, scale: int) -> Image.Image:
    """The frames of ``pixels`` ``(3, T, H, W)`` one below the other, each enlarged ``scale`` times."""
    frames = to_pil(pixels)
    width, height = frames[0].width * scale, frames[0].height * scale
    strip = Image.new("RGB", (width, height * len(frames)))
    for index, frame in enumerate(frames):
        strip.paste(frame.resize((width, height), Image.Resampling.NEAREST), (0, index * height))
    return strip


def column_titles(num_pairs: int) -> list[str]:
    titles = []
    for i in range(1, num_pairs + 1):
        titles += [f"example {i} input", f"example {i} target"]
    return [*titles, "query", "prediction", "ground truth"]


def make_grid(rows: Sequence[DemoRow], *, scale: int = 2, pad: int = 4, label_width: int = 170) -> Image.Image:
    """One RGB image: a title row, then per task its label, example pairs, query, prediction and truth."""
    if not rows:
        raise ValueError("no demo rows to draw")
    num_pairs = len(rows[0].case.pairs)
    font = ImageFont.load_default()
    height, width = rows[0].case.query.shape[-2:]
    cell_h, cell_w = height * scale, width * scale
    title_h = 18
    columns = column_titles(num_pairs)
    # a clip row is as tall as its frames, stacked
    row_heights = [cell_h * max(row.case.query.shape[1], row.case.target.shape[1]) for row in rows]
    grid = Image.new("RGB", (label_width + len(columns) * (cell_w + pad) + pad,
                             title_h + sum(row_heights) + len(rows) * pad + pad), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(columns):
        draw.text((label_width + pad + c * (cell_w + pad), 3), title, fill="black", font=font)
    top = title_h + pad
    for row, row_height in zip(rows, row_heights):
        main = row.task.metrics[0]
        clip = f" ({row.case.query.shape[1]} frames)" if row.case.query.shape[1] > 1 else ""
        lines = [row.label + clip, f"{main}: {row.scores[main]:.3f}", f"copy query: {row.copy_query_scores[main]:.3f}"]
        draw.multiline_text((pad, top + 4), "\n".join(lines), fill="black", font=font, spacing=4)
        cells = [p for pair in row.case.pairs for p in (pair.input, pair.target)]
        cells += [row.case.query, row.prediction, row.case.target]
        for c, pixels in enumerate(cells):
            grid.paste(frame_strip(pixels, scale), (label_width + pad + c * (cell_w + pad), top))
        top += row_height + pad
    return grid


def clip_rows(rows: Sequence[DemoRow]) -> list[DemoRow]:
    """The rows whose query or target is a clip."""
    return [row for row in rows if max(row.case.query.shape[1], row.case.target.shape[1]) > 1]


def animation_name(row: DemoRow) -> str:
    """The file name of a clip row's animated GIF."""
    return f"{row.label.replace(' ', '_')}.gif"


def side_by_side(row: DemoRow) -> Tensor:
    """Query | prediction | ground truth of a clip row, joined along the width ``(3, T, H, 3W)``
    (an image query is repeated over the target's frames)."""
    frames = row.case.target.shape[1]
    query = row.case.query if row.case.query.shape[1] == frames else row.case.query[:, -1:].expand(-1, frames, -1, -1)
    return torch.cat([query.float(), row.prediction.float(), row.case.target.float()], dim=-1)


# ---------------------------------------------------------------------------------------------
# outputs


def demo_metrics(rows: Sequence[DemoRow], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON of the demo: ``meta`` plus, per row, the main metric and every score."""
    return {
        **meta,
        "tasks": {
            row.label: {
                "task": row.task.name,
                "main_metric": row.task.metrics[0],
                "higher_is_better": dict(row.task.higher_is_better),
                "scores": row.scores,
                "copy_query_scores": row.copy_query_scores,
            }
            for row in rows
        },
    }


def text_table(rows: Sequence[DemoRow], model_name: str) -> str:
    from lavin_core.evaluation.table import format_table

    table = []
    for row in rows:
        main = row.task.metrics[0]
        arrow = "↑" if row.task.higher_is_better[main] else "↓"
        table.append([row.label, f"{main} {arrow}", f"{row.scores[main]:.3f}", f"{row.copy_query_scores[main]:.3f}"])
    return format_table(["task", "main metric", model_name, "copy query"], table)


#: The frame rate of the demo's animated files (slow enough to follow 5-frame clips).
DEMO_FPS = 4.0


def write_demo(rows: Sequence[DemoRow], out_dir: str | Path, *, meta: dict[str, Any]) -> tuple[Path, Path]:
    """``demo.png`` (the grid), ``metrics.json`` and, per clip task, ``TASK.gif`` in ``out_dir``;
    returns the paths of the first two."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, metrics = out / "demo.png", out / "metrics.json"
    # Each file is written atomically: a killed demo leaves the previous file or the new one.
    buffer = io.BytesIO()
    make_grid(rows).save(buffer, format="PNG")
    write_bytes(png, buffer.getvalue())
    for row in clip_rows(rows):
        save_image(side_by_side(row), out / animation_name(row), fps=DEMO_FPS)
    write_text(metrics, json.dumps(json_ready(demo_metrics(rows, meta)), indent=2) + "\n")
    return png, metrics

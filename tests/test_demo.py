"""lavin demo: rows, grid, metrics JSON and the command (with a random tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lavin_core import evaluation
from lavin_core.evaluation import demo
from lavin_core.cli import main
from lavin_core.data.images import read_clip, to_uint8
from tests.tiny_model import make_model_folder, tiny_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("demo") / "tiny")


@pytest.fixture(scope="module")
def rows(folder):
    return demo.run_demo(tiny_pipeline(folder), ["depth", "frame_prediction"], num_pairs=2, seed=3, num_steps=2,
                         photos=False, progress=False)


def test_rows_hold_cases_predictions_and_scores(rows):
    assert [row.label for row in rows] == ["depth", "frame_prediction"]
    for row in rows:
        assert row.prediction.shape == row.case.target.shape
        assert len(row.case.pairs) == 2
        assert list(row.scores) == list(row.task.metrics) == list(row.copy_query_scores)
        expected = evaluation.score(row.task, row.case.query, row.case.answer)
        assert row.copy_query_scores == expected
    assert rows[1].prediction.shape[1] == 5  # a clip


def test_demo_cases_are_the_eval_seed_examples(rows):
    task = rows[0].task
    first = list(task.examples(3, seed=3))
    assert torch.equal(rows[0].case.pairs[1].target, first[1].pair.target)
    assert torch.equal(rows[0].case.query, first[2].pair.input)


def test_grid_layout(rows):
    grid = demo.make_grid(rows, scale=2, pad=4, label_width=170)
    columns = len(demo.column_titles(2))
    assert columns == 2 * 2 + 3
    # the clip row is a strip of its 5 frames, top to bottom
    assert grid.size == (170 + columns * (128 + 4) + 4, 18 + (128 + 4) + (5 * 128 + 4) + 4)
    # the prediction cell of row 0 holds the prediction, upscaled by 2 (nearest)
    left, top = 170 + 4 + 5 * (128 + 4), 18 + 4
    cell = np.array(grid.crop((left, top, left + 128, top + 128)))
    want = to_uint8(rows[0].prediction)[-1].repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(cell, want)
    # frame 3 of the clip row's prediction, fourth from the top of its strip
    top = 18 + 4 + 128 + 4 + 3 * 128
    cell = np.array(grid.crop((left, top, left + 128, top + 128)))
    assert np.array_equal(cell, to_uint8(rows[1].prediction)[3].repeat(2, axis=0).repeat(2, axis=1))


def test_write_demo(rows, tmp_path):
    png, metrics = demo.write_demo(rows, tmp_path / "out", meta={"model": "tiny", "seed": 3})
    assert Image.open(png).size == demo.make_grid(rows).size
    data = json.loads(metrics.read_text())
    assert data["model"] == "tiny" and list(data["tasks"]) == ["depth", "frame_prediction"]
    entry = data["tasks"]["depth"]
    assert set(entry) == {"task", "main_metric", "higher_is_better", "scores", "copy_query_scores"}
    assert entry["main_metric"] == "abs_rel" and entry["higher_is_better"]["abs_rel"] is False
    assert entry["scores"]["abs_rel"] == pytest.approx(rows[0].scores["abs_rel"])
    # an animated file per clip task: query | prediction | ground truth, frame by frame
    assert sorted(p.name for p in (tmp_path / "out").glob("*.gif")) == ["frame_prediction.gif"]
    clip = read_clip(tmp_path / "out" / "frame_prediction.gif")
    assert clip.pixels.shape == (3, 5, 64, 3 * 64) and clip.fps == pytest.approx(demo.DEMO_FPS)


def test_demo_command(folder, tmp_path, capsys):
    out = tmp_path / "demo"
    status = main(["demo", "--model", str(folder), "--num-pairs", "1", "--steps", "2", "--ensemble", "2",
                   "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    data = json.loads((out / "metrics.json").read_text())
    # without --tasks: the model's trained tasks
    assert list(data["tasks"]) == ["depth", "edges"] and data["seed"] == 2026 and data["num_steps"] == 2
    assert data["ensemble_size"] == 2
    assert Image.open(out / "demo.png").mode == "RGB"
    assert "depth" in captured.out and "wrote" in captured.out


def test_demo_command_bad_input(folder, capsys):
    assert main(["demo", "--model", str(folder), "--tasks", "no-such-task", "--steps", "2", "--no-progress"]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err
    assert main(["demo", "--model", str(folder), "--steps", "0"]) == 2
    assert main(["demo", "--model", str(folder), "--temperature", "-1"]) == 2
    assert "--temperature: the temperature must be a finite number >= 0" in capsys.readouterr().err
    assert main(["demo", "--model", str(folder), "--ensemble", "0"]) == 2
    assert "--ensemble: the number of samples per query must be an integer >= 1, got 0" in capsys.readouterr().err


def test_photo_rows_when_scikit_image_is_installed():
    pytest.importorskip("skimage")
    labelled = demo.demo_tasks(["depth", "denoising"], size=64, photos=True)
    assert [label for label, _ in labelled] == ["depth", "denoising", "denoising (photo)"]

"""``lavin app`` without a browser: the prediction behind the page's button, its one-line errors,
the template list, and the missing-extra message. Random tiny models: predictions are noise."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from lavin_core.app.predictor import Predictor
from lavin_core.app.queries import generated_query, image_tasks
from lavin_core.app.request import NO_TASK, PAIRS_FROM_TASK, PAIRS_FROM_TEMPLATE, PAIRS_FROM_UPLOADS, AppRequest
from lavin_core.app.templates import template_folders
from lavin_core.app.uploads import read_uploaded_pairs
from lavin_core.cli import main
from lavin_core.errors import LavinError
from lavin_core.pipeline import load_pipeline
from lavin_core.pretrained.folders import INDEX_FILE
from tests.tiny_model import make_model_folder


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    """A random lavin-tiny whose index says: 64 px, 2 samples per query, 5 steps."""
    folder = make_model_folder(tmp_path_factory.mktemp("model"))
    index = json.loads((folder / INDEX_FILE).read_text())
    (folder / INDEX_FILE).write_text(json.dumps({**index, "ensemble_size": 2, "num_steps": 5}))
    pipe = load_pipeline(folder, sampler="euler", schedule="uniform")
    return Predictor(pipe, tmp_path_factory.mktemp("predictions"), name="random")


def png(path, size, seed):
    array = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    uploads = [png(tmp_path / f"{name}_{role}.png", (40, 24), seed)
               for seed, (name, role) in enumerate([("cat", "input"), ("cat", "target"), ("dog_2", "input"), ("dog_2", "target")])]
    return {"uploads": uploads, "query": png(tmp_path / "photo.png", (90, 120), 9), "dir": tmp_path}


def request(**changes):
    settings = dict(pair_source=PAIRS_FROM_UPLOADS, task=NO_TASK, query=None, num_steps=2, num_samples=1, seed=0)
    return AppRequest(**{**settings, **changes})


def one_line_error(predictor, req, match):
    with pytest.raises((LavinError, ValueError), match=match) as caught:
        predictor.predict(req)
    message = str(caught.value)
    assert "\n" not in message and "lavin-pairs-" not in message and "/tmp" not in message, message
    return message


def test_uploaded_pairs_give_a_prediction_of_the_query_size(predictor, files):
    steps = []
    result = predictor.predict(request(uploads=files["uploads"], query=files["query"]),
                               lambda done, total: steps.append((done, total)))
    # a 90x120 (HxW) query is processed at the model's 64 px (48x64) and the prediction resized back
    assert tuple(result.prediction.shape) == (3, 1, 90, 120)
    assert [tuple(p.input.shape[-2:]) for p in result.pairs] == [(48, 64)] * 2
    assert not result.metrics and result.truth is None
    assert steps == [(1, 2), (2, 2)]
    with Image.open(result.png) as image:
        assert image.size == (120, 90)
    assert result.summary.startswith("120x90 prediction (processed at 64x48) from 2 example pairs, 2 steps")


@pytest.mark.slow
def test_a_generated_scene_is_scored_and_an_edited_one_is_not(predictor, tmp_path):
    image, truth = generated_query("depth", 0, size=64)
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    req = request(pair_source=PAIRS_FROM_TASK, task="depth", query=str(path), num_pairs=2, truth=truth)
    result = predictor.predict(req)
    assert set(result.metrics) == {"abs_rel", "delta1"} and result.truth is not None
    assert all(np.isfinite(pair).all() for pair in result.metrics.values())
    edited = image.copy()
    edited[0, 0] = 255 - edited[0, 0]  # the user replaced the query: its truth no longer applies
    Image.fromarray(edited).save(path)
    assert predictor.predict(req).metrics == {}


def test_the_page_starts_at_the_models_steps_else_the_samplers(predictor):
    assert predictor.num_steps == 5
    official = load_pipeline(dit="random:lavin-tiny", vae="random:lavin-tiny", sampler="euler")
    assert Predictor(official, predictor.out_dir).num_steps == 19


@pytest.mark.slow
def test_a_task_combines_the_models_number_of_samples(predictor, files):
    req = request(pair_source=PAIRS_FROM_TASK, task="edges", query=files["query"], num_samples=None)
    assert "2 samples combined" in predictor.predict(req).summary
    # pairs of no registered task: one sample unless asked (then their pixel mean)
    assert "combined" not in predictor.predict(request(uploads=files["uploads"], query=files["query"],
                                                       num_samples=None)).summary


@pytest.mark.slow
def test_any_step_count_works_and_a_query_may_keep_its_size(files):
    pipe = load_pipeline(dit="random:lavin-tiny", vae="random:lavin-tiny")  # official grid: 19, 29 or 39 steps
    app = Predictor(pipe, files["dir"] / "out")
    query = png(files["dir"] / "small.png", (32, 48), 3)
    result = app.predict(request(uploads=files["uploads"], query=query, num_steps=3, resize=False))
    assert result.summary.startswith("48x32 prediction from 2 example pairs, 3 steps")


@pytest.mark.slow
def test_template_folders_are_listed_and_read(predictor, files, tmp_path):
    root = tmp_path / "templates"
    (root / "depth").mkdir(parents=True)
    (root / "empty").mkdir()
    for path in files["uploads"]:
        Image.open(path).save(root / "depth" / path.rsplit("/", 1)[-1])
    folders = template_folders(root)
    assert folders == {"depth": str(root / "depth")}
    result = predictor.predict(request(pair_source=PAIRS_FROM_TEMPLATE, template=folders["depth"],
                                       query=files["query"], num_pairs=1))
    assert len(result.pairs) == 1
    with pytest.raises(FileNotFoundError, match="no such folder"):
        template_folders(tmp_path / "missing")


def test_bad_uploads_get_the_readers_one_line_messages(predictor, files, tmp_path):
    uploads, query = files["uploads"], files["query"]
    empty = tmp_path / "bad" / "cat_input.png"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    corrupt = tmp_path / "bad" / "dog_2_target.png"
    corrupt.write_bytes(b"not a png at all")
    assert one_line_error(predictor, request(uploads=[str(empty), uploads[1]], query=query), "empty") == \
        "cat_input.png is empty (0 bytes); upload the image again"
    message = one_line_error(predictor, request(uploads=[*uploads[:3], str(corrupt)], query=query), "not a readable image")
    assert message.startswith("dog_2_target.png is not a readable image")
    assert "dog_2_target (no input)" in one_line_error(predictor, request(uploads=uploads[:2] + uploads[3:], query=query),
                                                       "unmatched template files")
    one_line_error(predictor, request(uploads=[uploads[0], uploads[0]], query=query), "two uploads are named cat_input.png")
    one_line_error(predictor, request(uploads=[], query=query), "no example pairs uploaded")
    one_line_error(predictor, request(uploads=uploads, query=str(empty)), "cat_input.png is empty")
    one_line_error(predictor, request(uploads=uploads, query=None), "no query image")
    one_line_error(predictor, request(uploads=uploads, query=query, resize=False), "multiples of 16")
    one_line_error(predictor, request(pair_source=PAIRS_FROM_TEMPLATE, query=query), "no template folder chosen")
    one_line_error(predictor, request(pair_source=PAIRS_FROM_TASK, query=query), "need a task")
    one_line_error(predictor, request(uploads=uploads, query=query, num_pairs=9), "1 to 8")
    one_line_error(predictor, request(uploads=uploads, query=query, guidance_scale=float("nan")), "finite")
    one_line_error(predictor, request(uploads=uploads, query=query, num_samples=17), "1 to 16")


def test_more_than_eight_uploaded_pairs_are_refused(tmp_path):
    paths = [png(tmp_path / f"p{i}_{role}.png", (16, 16), i) for i in range(9) for role in ("input", "target")]
    with pytest.raises(LavinError, match="9 example pairs uploaded; at most 8"):
        read_uploaded_pairs(paths, size=(16, 16), limit=8)


def test_the_task_list_puts_the_trained_tasks_first_and_leaves_out_clips():
    names = image_tasks(64, first=("edges", "depth", "frame_prediction"))
    assert names[:2] == ["edges", "depth"]
    assert "frame_prediction" not in names and "folder" not in names and "pose" in names


def test_a_missing_app_extra_is_one_line(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["app"]) == 2
    assert capsys.readouterr().err.strip() == \
        'lavin app: error: lavin app needs the app extra (Gradio): pip install "lavin-dit[app]"'

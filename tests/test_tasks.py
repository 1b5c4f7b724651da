"""Every built-in task: its renderer and reader round-trip the truth, its metrics rank truth above a corruption."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from lavin_core.cli import main
from lavin_core.context import check_pixels
from lavin_plugins.metrics import PSNR_CAP_DB
from lavin_plugins.tasks import BUILTIN_TASKS, DepthTask

NAMES = [task.name for task in BUILTIN_TASKS]
SIZE = 32
SEEDS = st.integers(0, 2**31 - 1)


#: Video tasks whose answers are clips of an image task's answers, checked the same way.
LIKE = {"video_depth": "depth", "video_normals": "normals", "video_segmentation": "foreground_segmentation"}


def quantise(pixels: torch.Tensor) -> torch.Tensor:
    """What saving the target as an 8-bit PNG and reading it back does."""
    return torch.round((pixels + 1) * 127.5) / 127.5 - 1


def assert_round_trip(name: str, read, truth) -> None:
    """read(render(truth)) equals truth up to 8-bit quantisation, in the task's own terms."""
    name = LIKE.get(name, name)
    if name == "depth":
        np.testing.assert_allclose(read, truth, atol=DepthTask().max_depth / (7 * 255))
    elif name == "normals":
        cosine = np.clip((read * truth).sum(-1), -1, 1)
        assert np.degrees(np.arccos(cosine)).max() < 0.5
    elif name in ("semantic_segmentation", "foreground_segmentation", "edges", "detection"):
        np.testing.assert_array_equal(read, truth)
    elif name == "pose":
        assert np.isfinite(read).all(), "a keypoint was not found"
        assert np.linalg.norm(read - truth, axis=-1).max() <= 2.0
    else:  # restoration and video: the answer is the image itself
        np.testing.assert_allclose(read, truth, atol=0.5 / 255 + 1e-6)


def corrupt(name: str, truth, rng: np.random.Generator):
    """A clearly wrong answer of the same kind."""
    name = LIKE.get(name, name)
    if name == "depth":
        return truth * 1.4 + rng.uniform(0, 0.5, truth.shape)
    if name == "normals":
        noisy = truth + rng.normal(0, 0.6, truth.shape)
        return noisy / np.linalg.norm(noisy, axis=-1, keepdims=True)
    if name == "semantic_segmentation":
        wrong = truth.copy()
        wrong[: truth.shape[0] // 2] = (wrong[: truth.shape[0] // 2] + 1) % 5
        return wrong
    if name in ("foreground_segmentation", "edges"):
        return np.roll(truth, 4, axis=1) ^ (rng.uniform(size=truth.shape) < 0.05)
    if name == "detection":
        return truth + np.array([5, -4, 6, 3], np.float32)
    if name == "pose":
        return truth + rng.normal(0, 6, truth.shape)
    return np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)


def perfect(task, metric: str) -> float:
    if metric == "psnr":
        return PSNR_CAP_DB
    return 1.0 if task.higher_is_better[metric] else 0.0


def worse(task, metric: str, bad: float, good: float) -> bool:
    return bad < good if task.higher_is_better[metric] else bad > good


@pytest.fixture(scope="module")
def tasks() -> dict:
    return {name: registry.get_task(name, size=SIZE) for name in NAMES}


def test_at_least_the_fourteen_tasks_are_registered():
    expected = {
        "depth", "normals", "semantic_segmentation", "foreground_segmentation", "edges", "detection", "pose",
        "colorization", "denoising", "deblurring", "inpainting", "low_light", "deraining", "frame_prediction",
    }  # fmt: skip
    assert expected <= set(registry.list_tasks())


@pytest.mark.parametrize("name", NAMES)
def test_class_attributes_describe_the_task(name):
    cls = registry.default_registry().task_entry(name).factory
    assert cls.name == name and cls.description
    assert cls.metrics and set(cls.higher_is_better) == set(cls.metrics)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=2, deadline=None)
@given(seed=SEEDS)
def test_render_and_read_round_trip_the_truth(tasks, name, seed):
    task = tasks[name]
    example = task.example(seed % 1000, seed=seed)
    check_pixels(example.pair.input, "input")
    check_pixels(example.pair.target, "target")
    assert_round_trip(name, task.read(quantise(task.render(example.answer))), example.answer)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=2, deadline=None)
@given(seed=SEEDS)
def test_metrics_are_perfect_on_truth_and_worse_on_a_corrupted_copy(tasks, name, seed):
    task = tasks[name]
    truth = task.example(0, seed=seed).answer
    best = task.score(truth, truth)
    assert set(best) == set(task.metrics)
    for metric in task.metrics:
        if metric != "mean_error_px":
            assert best[metric] == pytest.approx(perfect(task, metric), abs=1e-6), metric
    bad = task.score(corrupt(name, truth, np.random.default_rng(seed)), truth)
    main_metric = task.metrics[0]
    assert worse(task, main_metric, bad[main_metric], best[main_metric])


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_deterministic_and_indexable(tasks, name):
    task = tasks[name]
    first = list(task.examples(2, seed=5))
    again = list(task.examples(2, seed=5))
    other = task.example(0, seed=6)
    assert [e.id for e in first] == [e.id for e in again] and len({e.id for e in first}) == 2
    assert torch.equal(first[1].pair.input, again[1].pair.input)
    assert torch.equal(first[1].pair.target, task.example(1, seed=5).pair.target)
    assert not torch.equal(first[0].pair.input, other.pair.input)


def test_size_option_and_bad_sizes():
    assert registry.get_task("depth", size=48).example(0).pair.input.shape == (3, 1, 48, 48)
    assert registry.get_task("edges", size=(32, 64)).example(0).pair.target.shape == (3, 1, 32, 64)
    with pytest.raises(ValueError, match="multiples of 16"):
        registry.get_task("depth", size=50)


def test_frame_prediction_gives_clips():
    task = registry.get_task("frame_prediction", size=SIZE, frames=5)
    pair = task.example(0).pair
    assert pair.input.shape == pair.target.shape == (3, 5, SIZE, SIZE)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        registry.get_task("frame_prediction", frames=4)


def test_restoration_degrades_its_input():
    for name in ("colorization", "denoising", "deblurring", "inpainting", "low_light", "deraining"):
        task = registry.get_task(name, size=SIZE)
        example = task.example(1, seed=3)
        assert not torch.equal(example.pair.input, example.pair.target), name


def test_lavin_tasks_lists_metrics_and_descriptions(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for task in BUILTIN_TASKS:
        assert task.name in out and task.metrics[0] in out and task.description[:30] in out

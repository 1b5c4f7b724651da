"""Test-time ensembling: the combining rules, every task's ``combine``, and sampling several per query."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import registry
from lavin_core import evaluation
from lavin_core.ensemble import mean_answer, median_answer, minimum_bayes_risk, unit_mean_answer
from tests.tiny_model import make_model_folder, tiny_pipeline

floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4)), elements=floats))
def test_mean_answer_is_the_elementwise_mean(stack):
    out = mean_answer(list(stack))
    assert out.dtype == np.float32 and out.shape == stack.shape[1:]
    np.testing.assert_allclose(out, stack.astype(np.float64).mean(0), rtol=1e-5, atol=1e-3)


@given(hnp.arrays(np.float32, (4, 3, 2, 3), elements=st.floats(-1, 1, width=32)))
def test_unit_mean_answer_has_unit_length_or_is_zero(stack):
    out = unit_mean_answer(list(stack))
    norms = np.linalg.norm(out, axis=-1)
    mean_norms = np.linalg.norm(stack.mean(0), axis=-1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (mean_norms < 1e-6))


def test_unit_mean_answer_of_equal_normals_is_that_normal():
    normal = np.array([[[0.6, 0.0, 0.8]]], np.float32)
    np.testing.assert_allclose(unit_mean_answer([normal] * 3), normal, atol=1e-6)


def test_median_answer_skips_missing_points():
    a = np.array([[1.0, 2.0], [np.nan, np.nan]], np.float32)
    b = np.array([[3.0, 4.0], [np.nan, np.nan]], np.float32)
    c = np.array([[10.0, 9.0], [5.0, 6.0]], np.float32)
    out = median_answer([a, b, c])
    np.testing.assert_array_equal(out[0], [3.0, 4.0])
    np.testing.assert_array_equal(out[1], [5.0, 6.0])  # only c found the second point
    assert np.all(np.isnan(median_answer([a[1:], b[1:]])))  # nobody found it: still missing


def test_minimum_bayes_risk_picks_the_answer_nearest_the_others():
    answers = [0.0, 1.0, 1.5, 9.0]  # summed squared distances to the others: 84.25, 65.25, 58.75, 201.25
    closeness = lambda a, b: -((a - b) ** 2)  # noqa: E731
    assert minimum_bayes_risk(answers, closeness) == 1.5
    distance = lambda a, b: (a - b) ** 2  # noqa: E731
    assert minimum_bayes_risk(answers, distance, higher_is_better=False) == 1.5
    assert minimum_bayes_risk(["only"], closeness) == "only"
    # an agreement that cannot be computed (NaN) counts as the worst
    assert minimum_bayes_risk([0.0, 1.0, 2.0], lambda a, b: math.nan if 1.0 in (a, b) else -abs(a - b)) == 0.0
    with pytest.raises(ValueError, match="nothing to combine"):
        minimum_bayes_risk([], closeness)
    with pytest.raises(ValueError, match="nothing to combine"):
        mean_answer([])


TASKS = [name for name in registry.list_tasks() if name != "folder"]


@pytest.mark.parametrize("name", TASKS)
def test_every_task_combines_copies_of_an_answer_into_that_answer(name):
    task = registry.get_task(name).instance(3)  # a task drawn per context makes examples through an instance
    example = next(iter(task.examples(1, seed=3)))
    answer = task.read(example.pair.target)
    combined = task.combine([answer, answer, answer])
    assert task.score(combined, example.answer) == pytest.approx(task.score(answer, example.answer), abs=1e-5, nan_ok=True)


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("level", [-1.0, 1.0])
def test_every_task_combines_samples_that_hold_no_answer(name, level):
    # a model's samples may show nothing the task can read (no box, no keypoint, a blank frame):
    # their consensus must still be drawn, in the target's shape, not fail on a missing answer
    task = registry.get_task(name).instance(4)
    target = next(iter(task.examples(1, seed=4))).pair.target
    blank = torch.full_like(target, level)
    combined = evaluation.combine_samples(task, [blank, blank, blank])
    assert combined.shape == target.shape and torch.isfinite(combined).all()


@pytest.mark.parametrize("name", ["edges", "foreground_segmentation", "semantic_segmentation"])
def test_discrete_answers_take_the_sample_the_others_agree_with(name):
    task = registry.get_task(name)
    truth, other, third = (task.read(e.pair.target) for e in task.examples(3, seed=5))
    assert task.combine([other, truth, truth]) is not other
    combined = task.combine([truth, third, truth])
    np.testing.assert_array_equal(combined, truth)


def test_detection_and_pose_take_the_median_point():
    detection = registry.get_task("detection")
    boxes = [np.array([0, 0, 10, 10], np.float32), np.array([2, 2, 12, 12], np.float32),
             np.array([40, 40, 60, 60], np.float32), np.full(4, np.nan, np.float32)]
    np.testing.assert_array_equal(detection.combine(boxes), [2, 2, 12, 12])
    pose = registry.get_task("pose")
    points = [np.full((14, 2), v, np.float32) for v in (10.0, 11.0, 50.0)]
    np.testing.assert_array_equal(pose.combine(points), np.full((14, 2), 11.0))


def test_restorations_average_their_samples():
    task = registry.get_task("colorization")
    red, blue = np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    np.testing.assert_allclose(task.combine([red, blue]), (red + blue) / 2)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return tiny_pipeline(make_model_folder(Path(tmp_path_factory.mktemp("ens")) / "model"))


@settings(max_examples=3, deadline=None)
@given(count=st.integers(1, 3))
def test_more_samples_only_add_to_the_first(pipe, count):
    cases = evaluation.draw_cases(registry.get_task("edges"), count, num_pairs=1, seed=11)
    single = evaluation.predict(pipe, cases, seed=11, num_steps=2, progress=False)
    samples = evaluation.predict_samples(pipe, cases, 3, seed=11, num_steps=2, progress=False)
    assert [len(s) for s in samples] == [3] * count
    for first, many in zip(single, samples):
        torch.testing.assert_close(many[0], first)
        assert not torch.equal(many[0], many[1])  # fresh noise per sample
    with pytest.raises(ValueError, match="number of samples per query must be an integer >= 1, got 0"):
        evaluation.predict_samples(pipe, cases, 0, progress=False)


def test_combine_samples_draws_the_tasks_consensus():
    task = registry.get_task("foreground_segmentation")
    a, b = (e.pair.target for e in task.examples(2, seed=2))
    assert evaluation.combine_samples(task, [a]) is a
    combined = evaluation.combine_samples(task, [b, a, b])
    np.testing.assert_array_equal(task.read(combined), task.read(b))

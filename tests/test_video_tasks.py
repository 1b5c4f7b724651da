"""The video tasks: clips of exact per-frame answers, and temporal metrics that punish flicker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from lavin_plugins import metrics
from lavin_plugins.tasks.video_scenes import VIDEO_SCENE_TASKS, clay_shading

VIDEO_TASKS = [task.name for task in VIDEO_SCENE_TASKS] + ["frame_prediction"]
SIZE = 32


@pytest.mark.parametrize("name", VIDEO_TASKS)
def test_video_tasks_are_registered_clips_with_a_temporal_metric(name):
    task = registry.get_task(name, size=SIZE, frames=9)
    example = task.example(0, seed=1)
    assert example.pair.input.shape == example.pair.target.shape == (3, 9, SIZE, SIZE)
    assert len(example.answer) == 9
    assert any(m.startswith("temporal") for m in task.metrics)
    assert not task.higher_is_better[next(m for m in task.metrics if m.startswith("temporal"))]


@pytest.mark.parametrize("name", [task.name for task in VIDEO_SCENE_TASKS])
def test_the_scene_moves_so_frames_differ(name):
    answer = registry.get_task(name, size=SIZE).example(2, seed=0).answer
    assert any(not np.array_equal(answer[0], frame) for frame in answer[1:])


def _flicker(task, truth, rng):
    """Same per-frame damage, but frames alternately shifted up and down: a flickering answer."""
    name = task.name
    if name == "video_segmentation":
        wrong = truth.copy()
        rows = rng.uniform(size=truth.shape[1:]) < 0.1
        steady = truth ^ rows  # the same pixels wrong in every frame
        flicker = np.stack([f ^ (rows if t % 2 else np.roll(rows, 7, axis=0)) for t, f in enumerate(wrong)])
        return steady, flicker
    scale = {"video_depth": 0.3, "video_normals": 0.15}.get(name, 0.05)
    sign = np.where(np.arange(len(truth)) % 2 == 0, 1.0, -1.0).reshape(-1, *([1] * (truth.ndim - 1)))
    steady, flicker = truth + scale, truth + scale * sign
    if name == "video_normals":
        steady, flicker = (v / np.linalg.norm(v, axis=-1, keepdims=True) for v in (steady, flicker))
    if name in ("depth_to_video", "frame_prediction"):
        steady, flicker = np.clip(truth - scale, 0, 1), np.clip(truth + scale * sign, 0, 1)
    return steady, flicker


@pytest.mark.parametrize("name", VIDEO_TASKS)
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_a_flickering_answer_scores_worse_on_the_temporal_metric(name, seed):
    task = registry.get_task(name, size=SIZE)
    truth = task.example(0, seed=seed).answer
    steady, flicker = _flicker(task, truth, np.random.default_rng(seed))
    temporal = next(m for m in task.metrics if m.startswith("temporal"))
    assert task.score(truth, truth)[temporal] == pytest.approx(0.0, abs=1e-6)
    assert task.score(flicker, truth)[temporal] > task.score(steady, truth)[temporal] + 1e-3


def test_temporal_metrics_on_known_values():
    truth = np.zeros((3, 2, 2))
    assert metrics.temporal_error(truth + 5, truth) == 0.0  # a constant offset does not change over time
    assert metrics.temporal_error(np.stack([truth[0], truth[0] + 1, truth[0]]), truth) == 1.0
    assert metrics.temporal_error(truth[:1], truth[:1]) == 0.0
    labels = np.zeros((3, 2, 2), int)
    flicker = labels.copy()
    flicker[1, 0, 0] = 1
    assert metrics.temporal_flicker(flicker, labels) == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="must match"):
        metrics.temporal_error(truth, truth[:2])


def test_clay_shading_follows_the_normals_only():
    up = np.array([[[0.0, 1.0, 0.0]]])
    away = np.array([[[0.0, 0.0, -1.0]]])
    assert clay_shading(up)[0, 0, 0] > clay_shading(away)[0, 0, 0] > 0
    assert np.ptp(clay_shading(up)[0, 0]) == 0  # grey


@pytest.mark.parametrize("frames", [0, 4, 6, "5"])
def test_bad_frame_counts_are_one_line_errors(frames):
    with pytest.raises(ValueError, match="1 \\+ 4k") as info:
        registry.get_task("video_depth", frames=frames)
    assert "\n" not in str(info.value)

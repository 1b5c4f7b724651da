"""Long clips in windows: the plan covers every frame, blending is exact on consistent answers, context carries."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.context import ExamplePair
from lavin_core.pipeline.windows import (
    WindowError,
    last_frames,
    plan_windows,
    predict_windows,
    window_pixels,
    window_weights,
)


@settings(max_examples=60, deadline=None)
@given(num_frames=st.integers(1, 60), k=st.integers(0, 3), data=st.data())
def test_windows_cover_every_frame_with_full_length(num_frames, k, data):
    length = 1 + 4 * k
    overlap = data.draw(st.integers(0, length - 1))
    windows = plan_windows(num_frames, length, overlap)
    covered = set()
    for window in windows:
        assert window.stop - window.start + window.pad == length
        covered |= set(range(window.start, window.stop))
    assert covered == set(range(num_frames))
    for before, after in zip(windows, windows[1:]):
        assert after.start > before.start and before.stop - after.start >= overlap
    total = torch.zeros(num_frames)
    for window, weight in zip(windows, window_weights(windows)):
        total[window.start:window.stop] += weight
    assert (total > 0).all()


def test_short_clips_are_padded_by_repeating_the_last_frame():
    assert plan_windows(3, 5) == [plan_windows(3, 5)[0]] and plan_windows(3, 5)[0].pad == 2
    clip = torch.rand(3, 3, 4, 4) * 2 - 1
    padded = window_pixels(clip, plan_windows(3, 5)[0])
    assert padded.shape[1] == 5 and torch.equal(padded[:, 3], clip[:, 2]) and torch.equal(padded[:, 4], clip[:, 2])
    assert [(w.start, w.stop) for w in plan_windows(12, 5)] == [(0, 5), (4, 9), (7, 12)]
    assert [(w.start, w.stop) for w in plan_windows(3, 1)] == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("call, message", [
    (lambda: plan_windows(0, 5), "at least one frame"),
    (lambda: plan_windows(5, 5, 5), "overlap must be in"),
    (lambda: last_frames(torch.zeros(3, 3, 4, 4), 5), "has 3 frames but the example inputs have 5"),
])
def test_impossible_windows_are_one_line_errors(call, message):
    with pytest.raises(WindowError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def _pairs(length: int, count: int = 2) -> list[ExamplePair]:
    generator = torch.Generator().manual_seed(length)
    return [ExamplePair(input=torch.rand(3, length, 8, 8, generator=generator) * 2 - 1,
                        target=torch.rand(3, length, 8, 8, generator=generator) * 2 - 1) for _ in range(count)]


@pytest.mark.parametrize("num_frames", [1, 3, 5, 7, 13, 30])
def test_a_frame_by_frame_answer_is_stitched_exactly(num_frames):
    query = torch.rand(3, num_frames, 8, 8, generator=torch.Generator().manual_seed(num_frames)) * 2 - 1
    seen = []

    def predict(pairs, frames):
        seen.append(len(pairs))
        assert frames.shape == (3, 5, 8, 8)
        return -frames  # an answer of each frame alone: stitching must give it back unchanged

    out = predict_windows(predict, _pairs(5), query)
    torch.testing.assert_close(out, -query)
    assert seen[0] == 2 and all(n == 3 for n in seen[1:])  # later windows carry the previous one as a pair


def test_carried_pair_is_the_previous_window_and_its_prediction():
    query = torch.rand(3, 9, 8, 8) * 2 - 1
    contexts = []

    def predict(pairs, frames):
        contexts.append(pairs)
        return frames * 0.5

    predict_windows(predict, _pairs(5), query, overlap=1)
    carried = contexts[1][-1]
    torch.testing.assert_close(carried.input, query[:, 0:5])
    torch.testing.assert_close(carried.target, query[:, 0:5] * 0.5)
    contexts.clear()
    predict_windows(predict, _pairs(5), query, carry=False)
    assert all(len(c) == 2 for c in contexts)


def test_windows_need_frame_aligned_pairs():
    pair = ExamplePair(input=torch.zeros(3, 5, 8, 8), target=torch.zeros(3, 1, 8, 8))
    with pytest.raises(WindowError, match="match their inputs frame by frame"):
        predict_windows(lambda pairs, frames: frames, [pair], torch.zeros(3, 9, 8, 8))


def test_predict_clip_picks_one_call_windows_or_the_last_frames():
    from lavin_core.pipeline.windows import predict_clip

    calls = []

    def predict(pairs, frames):
        calls.append(frames.shape[1])
        return -frames

    pairs = _pairs(5)
    query = torch.rand(3, 9, 8, 8) * 2 - 1
    torch.testing.assert_close(predict_clip(predict, pairs, query[:, :5]), -query[:, :5])
    assert calls == [5]
    calls.clear()
    torch.testing.assert_close(predict_clip(predict, pairs, query), -query)
    assert calls == [5, 5]
    calls.clear()
    torch.testing.assert_close(predict_clip(predict, pairs, query, frame_aligned=False), -query[:, 4:])
    assert calls == [5]
    with pytest.raises(WindowError, match="has 3 frames but the example inputs have 5"):
        predict_clip(predict, pairs, query[:, :3], frame_aligned=False)


def test_pipeline_clip_takes_a_query_of_any_length_and_pairs_of_any_size():
    from lavin_core.pipeline.windows import pipeline_clip

    class Negate:
        def __call__(self, *, pairs, query, **options):
            assert options == {"progress": False, "num_steps": 3} and pairs[0].input.shape[-2:] == (8, 8)
            return type("Out", (), {"predictions": [-query]})()

    pairs = [(torch.rand(3, 5, 16, 16) * 2 - 1, torch.rand(3, 5, 16, 16) * 2 - 1)]
    query = torch.rand(3, 7, 8, 8) * 2 - 1
    torch.testing.assert_close(pipeline_clip(Negate(), pairs, query, num_steps=3), -query)

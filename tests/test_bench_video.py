"""lavin bench on video tasks: the per-frame baseline predicts each frame alone; the temporal summary."""

from __future__ import annotations

import attrs
import pytest
import torch

import registry
from lavin_core.evaluation import draw_cases
from lavin_core.evaluation.bench import markdown_table, run_bench
from lavin_core.evaluation.per_frame import PER_FRAME, frame_cases, has_per_frame_baseline, per_frame_predictions
from tests.tiny_model import make_model_folder, tiny_pipeline


class EchoPipe:
    """Answers every context with its negated query, and records the contexts it saw."""

    @attrs.frozen
    class _Sampler:
        def timesteps(self, num_steps):
            return torch.tensor([1.0, 0.0])

    sampler = _Sampler()

    def __init__(self):
        self.seen = []

    def __call__(self, contexts, *, num_samples=1, **_):
        self.seen += contexts
        return attrs.make_class("Out", ["samples"])([[-c.query] * num_samples for c in contexts])


def test_frame_cases_split_every_pair_and_the_query_by_frame():
    case = draw_cases(registry.get_task("video_depth", size=32), 1, num_pairs=2, seed=1)[0]
    frames = frame_cases(case)
    assert has_per_frame_baseline(case) and len(frames) == 5
    for t, frame in enumerate(frames):
        assert torch.equal(frame.query, case.query[:, t:t + 1])
        assert torch.equal(frame.pairs[1].target, case.pairs[1].target[:, t:t + 1])
    image_case = draw_cases(registry.get_task("depth", size=32), 1, num_pairs=1, seed=1)[0]
    assert not has_per_frame_baseline(image_case)


def test_the_per_frame_model_sees_one_frame_at_a_time_and_its_answers_are_stacked():
    task = registry.get_task("video_depth", size=32)
    cases = draw_cases(task, 2, num_pairs=2, seed=3)
    pipe = EchoPipe()
    clips = per_frame_predictions(pipe, task, cases, progress=False)
    assert all(c.query.shape[1] == 1 and c.num_pairs == 2 for c in pipe.seen) and len(pipe.seen) == 10
    for clip, case in zip(clips, cases):
        torch.testing.assert_close(clip, -case.query)


@pytest.mark.slow
def test_bench_scores_video_tasks_against_the_per_frame_model(tmp_path):
    pipe = tiny_pipeline(make_model_folder(tmp_path / "tiny"))
    result = run_bench(pipe, ["video_segmentation", "depth"], model_name="tiny", count=1, num_pairs=1,
                       num_steps=1, progress=False, ceiling=False)
    assert result["baselines"][-1] == PER_FRAME and result["per_frame_count"] == 1
    assert PER_FRAME in result["tasks"]["video_segmentation"]["scores"]
    assert PER_FRAME not in result["tasks"]["depth"]["scores"]
    table = markdown_table(result)
    assert "per-frame model (each frame alone) on" in table and "| - |" in table

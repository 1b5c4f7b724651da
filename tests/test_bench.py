"""lavin bench: baselines, scoring, held-out marks, wins, outputs (with a random tiny model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from lavin_core import evaluation
from lavin_core.evaluation.bench import (held_out_status, markdown_table, run_bench, summary_counts, summary_line,
                                         task_summary, write_bench)
from lavin_core.cli import main
from lavin_core.context import Example, ExamplePair
from lavin_core.evaluation import Case
from lavin_core.interfaces import Task
from tests.script_module import load_script
from tests.tiny_model import make_model_folder, tiny_pipeline


class IdentityTask(Task):
    """Target = input (random pixels): copying the query is a perfect prediction."""

    name = "bench-test-identity"
    description = "identity"
    metrics = ("mae", "exact")
    higher_is_better = {"mae": False, "exact": True}

    def __init__(self, *, size: int = 64):
        self.size = size

    def examples(self, count, *, seed=0):
        generator = torch.Generator().manual_seed(seed)
        for index in range(count):
            pixels = torch.rand(3, 1, self.size, self.size, generator=generator) * 2 - 1
            yield Example(pair=ExamplePair(input=pixels, target=pixels.clone()), answer=pixels.clone(), id=str(index))

    def render(self, answer):
        return answer

    def read(self, pixels):
        return pixels

    def score(self, predicted, truth):
        mae = float((predicted - truth).abs().mean())
        return {"mae": mae, "exact": float(mae < 1e-6)}


class Plugin:
    @registry.hookimpl
    def lavin_register_tasks(self, register):
        register(IdentityTask)


@pytest.fixture(scope="module")
def identity():
    name = registry.register_plugin(Plugin(), "bench-test-plugin")
    yield IdentityTask.name
    registry.unregister_plugin(name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("bench") / "tiny")


def _random_case(seed: int, num_pairs: int, frames: int = 1) -> Case:
    g = torch.Generator().manual_seed(seed)
    pixels = lambda: torch.rand(3, frames, 8, 8, generator=g) * 2 - 1  # noqa: E731
    pairs = [ExamplePair(input=pixels(), target=pixels()) for _ in range(num_pairs)]
    return Case(task="t", pairs=pairs, query=pixels(), target=pixels(), answer=None)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), num_pairs=st.integers(1, 5), frames=st.sampled_from([1, 5]))
def test_baselines_by_hand(seed, num_pairs, frames):
    case = _random_case(seed, num_pairs, frames)
    assert evaluation.copy_query(case) is case.query
    mean = sum(pair.target for pair in case.pairs) / num_pairs
    got = evaluation.mean_of_targets(case)
    assert got.shape == case.target.shape
    assert (got - mean).norm() / mean.norm() < 1e-5
    distances = [float(((pair.input - case.query) ** 2).sum()) for pair in case.pairs]
    assert evaluation.nearest_target(case) is case.pairs[distances.index(min(distances))].target


def test_nearest_target_finds_a_copy_of_the_query():
    case = _random_case(1, 4)
    pairs = list(case.pairs)
    pairs[2] = ExamplePair(input=(case.query * 0.99).clamp(-1, 1), target=pairs[2].target)
    case = Case(task="t", pairs=pairs, query=case.query, target=case.target, answer=None)
    assert evaluation.nearest_target(case) is pairs[2].target


def test_draw_cases_groups_consecutive_examples():
    task = registry.get_task("edges", size=32)
    cases = evaluation.draw_cases(task, 2, num_pairs=2, seed=5)
    examples = list(task.examples(6, seed=5))
    assert torch.equal(cases[1].pairs[0].input, examples[3].pair.input)
    assert torch.equal(cases[1].query, examples[5].pair.input) and torch.equal(cases[1].target, examples[5].pair.target)
    with pytest.raises(ValueError, match="count must be at least 1"):
        evaluation.draw_cases(task, 0, num_pairs=2)


def test_summary_picks_the_best_baseline_by_direction():
    scores = {"m": {"err": 0.5, "acc": 0.1}, "a": {"err": 0.7, "acc": 0.9}, "b": {"err": 0.4, "acc": 0.2},
              "c": {"err": math.nan, "acc": 0.3}}
    lower = task_summary(("err", "acc"), {"err": False, "acc": True}, scores, "m", held_out=False)
    assert lower["best_baseline"] == "b" and lower["wins"] is False
    higher = task_summary(("acc", "err"), {"err": False, "acc": True}, scores, "m", held_out=True)
    assert higher["best_baseline"] == "a" and higher["wins"] is False
    scores["m"]["err"] = 0.3
    assert task_summary(("err",), {"err": False}, scores, "m", held_out=None)["wins"] is True
    scores["m"]["err"] = math.nan
    assert task_summary(("err",), {"err": False}, scores, "m", held_out=None)["wins"] is False
    scores["m"]["err"], scores["ceiling"] = 0.3, {"err": 0.0, "acc": 1.0}
    summary = task_summary(("err",), {"err": False}, scores, "m", held_out=None, references=("ceiling",))
    assert summary["best_baseline"] == "b" and summary["wins"] is True


def test_a_replaced_jdit_is_scored_by_declared_splits_and_unknowns_are_counted_apart():
    # The model's task list decides; without one (--dit replaced the J-DiT) the task's declared
    # split does, and a task with neither is neither trained nor held out in the summary.
    assert held_out_status("depth", "trained", ["depth"]) is False
    assert held_out_status("map_duotone", "held-out", ["depth"]) is True
    assert held_out_status("map_duotone", "held-out", None) is True
    assert held_out_status("depth", "trained", None) is False
    assert held_out_status("invert", None, None) is None
    entries = {name: {"held_out": held, "wins": wins, "scores": {}, "plugin": "builtin"}
               for name, held, wins in [("a", False, True), ("b", True, True), ("c", True, False), ("d", None, True)]}
    counts = summary_counts(entries, "m")
    assert (counts["wins_on_trained"], counts["trained_count"]) == (1, 1)
    assert (counts["wins_on_held_out"], counts["held_out_count"]) == (1, 2)
    assert (counts["wins_on_unknown"], counts["unknown_count"]) == (1, 1)
    line = summary_line({"model": "m", **counts})
    assert "of 1 of 1 trained tasks and of 1 of 2 held-out tasks and of 1 of 1 tasks it may or may not" in line


def test_run_bench_scores_model_and_baselines(folder, identity, tmp_path):
    pipe = tiny_pipeline(folder)
    result = run_bench(pipe, ["depth", identity], model_name="tiny", trained_tasks=["depth"], count=2, num_pairs=2,
                       seed=11, num_steps=2, progress=False)
    assert list(result["tasks"]) == ["depth", identity]
    depth, ident = result["tasks"]["depth"], result["tasks"][identity]
    assert depth["held_out"] is False and ident["held_out"] is True
    assert result["trained_count"] == 1 and result["num_steps"] == 2
    for entry, metrics in ((depth, ["abs_rel", "delta1"]), (ident, ["mae", "exact"])):
        assert set(entry["scores"]) == {"tiny", "copy_query", "blurred_query", "mean_of_targets", "nearest_target",
                                        "vae_ceiling"}
        assert all(list(s) == metrics for s in entry["scores"].values())
        assert entry["main_metric"] == metrics[0]
    # identity: copying the query is perfect, so it is the best baseline and random weights cannot beat it
    assert ident["scores"]["copy_query"] == {"mae": 0.0, "exact": 1.0}
    assert ident["best_baseline"] == "copy_query" and ident["wins"] is False
    assert depth["best_baseline"] != "vae_ceiling"
    assert ident["scores"]["tiny"]["mae"] > 0.01
    # mean of targets, by hand, from the same examples
    task = IdentityTask()
    cases = evaluation.draw_cases(task, 2, num_pairs=2, seed=11)
    by_hand = [float(((c.pairs[0].target + c.pairs[1].target) / 2 - c.answer).abs().mean()) for c in cases]
    assert math.isclose(ident["scores"]["mean_of_targets"]["mae"], sum(by_hand) / 2, rel_tol=1e-5)
    # the ceiling is the true target through the (random) ST-VAE: a reference, never the best baseline
    round_trip = pipe.reconstruct([c.target for c in cases])
    by_hand = [float((r - c.answer).abs().mean()) for r, c in zip(round_trip, cases)]
    assert math.isclose(ident["scores"]["vae_ceiling"]["mae"], sum(by_hand) / 2, rel_tol=1e-5)
    assert ident["scores"]["vae_ceiling"]["mae"] > 0.01  # random weights lose detail
    assert result["references"] == ["vae_ceiling"]

    json_path, md_path = write_bench(result, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    assert saved["tasks"][identity]["scores"]["copy_query"]["mae"] == 0.0
    table = md_path.read_text()
    assert table == markdown_table(result)
    assert "| depth | abs_rel ↓ * |" in table and "held out" in table and "of 1 trained tasks" in table
    assert "| nearest_target | vae_ceiling | wins |" in table
    assert saved["schema"] == "lavin-bench/2" and saved["held_out_count"] == 1
    assert saved["plugins"] == {"builtin": {"wins": int(depth["wins"]), "count": 1},
                                "bench-test-plugin": {"wins": 0, "count": 1}}
    assert "held-out tasks (plugin tasks: bench-test-plugin 0 of 1)" in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 4  # header + 4 metric rows


def test_bench_command(folder, tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", "--model", str(folder), "--tasks", "edges", "frame_prediction", "--count", "1",
                   "--num-pairs", "1", "--steps", "2", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result = json.loads((out / "bench.json").read_text())
    assert result["model"] == "tiny" and result["seed"] == 2026
    assert result["tasks"]["edges"]["held_out"] is False and result["tasks"]["frame_prediction"]["held_out"] is True
    assert (out / "bench.md").is_file() and "frame_prediction" in captured.out
    assert result["sampler"] == "euler" and "euler sampler, 2 steps" in (out / "bench.md").read_text()
    assert result["temperature"] == 1.0 and result["ensemble_size"] == 1  # the tiny folder recommends none
    assert main(["bench", "--model", str(folder), "--count", "0"]) == 2


def test_bench_with_test_time_adaptation_says_so(folder, tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", "--model", str(folder), "--tasks", "edges", "--count", "1", "--num-pairs", "2",
                   "--steps", "2", "--adapt-steps", "2", "--adapt-lr", "1e-4", "--out", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    result = json.loads((out / "bench.json").read_text())
    assert (result["adapt_steps"], result["adapt_lr"]) == (2, 1e-4)
    assert "the J-DiT adapted 2 steps to each context's pairs (learning rate 0.0001" in (out / "bench.md").read_text()


def test_bench_command_takes_another_sampler(folder, tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", "--model", str(folder), "--tasks", "edges", "--count", "1", "--num-pairs", "1",
                   "--sampler", "heun", "--steps", "2", "--temperature", "0.5", "--ensemble", "2", "--out", str(out),
                   "--no-progress"])
    assert status == 0, capsys.readouterr().err
    result = json.loads((out / "bench.json").read_text())
    assert result["sampler"] == "heun" and result["temperature"] == 0.5 and result["ensemble_size"] == 2
    assert "temperature 0.5, 2 samples per case combined by the task" in (out / "bench.md").read_text()
    assert main(["bench", "--model", str(folder), "--sampler", "rk9", "--count", "1"]) == 2
    assert "rk9" in capsys.readouterr().err


def test_blurred_query_is_a_blur_of_the_query():
    case = _random_case(0, 1, frames=5)
    blurred = evaluation.cases.blurred_query(case)
    assert blurred.shape == case.query.shape
    flat = Case(task="t", pairs=case.pairs, query=torch.full_like(case.query, 0.3), target=case.target, answer=None)
    assert torch.allclose(evaluation.cases.blurred_query(flat), flat.query, atol=1e-6)  # a blur keeps a flat image
    assert blurred.var() < case.query.var()  # and smooths a noisy one


def test_cases_of_a_task_drawn_per_context_each_have_their_instance():
    task = registry.get_task("semantic_segmentation", size=32, style="drawn")
    cases = evaluation.draw_cases(task, 3, num_pairs=2, seed=5)
    palettes = {c.instance.palette for c in cases}
    assert len(palettes) == 3
    for case in cases:  # every pair and the query are drawn by the case's own instance
        for pair in case.pairs:
            assert torch.equal(case.instance.render(case.instance.read(pair.target)), pair.target)
        assert evaluation.score(case.instance, case.target, case.answer)["miou"] == 1.0
    again = evaluation.draw_cases(task, 3, num_pairs=2, seed=5)
    assert [c.instance.palette for c in again] == [c.instance.palette for c in cases]
    fixed = evaluation.draw_cases(registry.get_task("depth", size=32), 2, num_pairs=1, seed=5)
    assert all(c.instance.colormap == fixed[0].instance.colormap for c in fixed)


def test_pairs_sweep_uses_the_same_queries(folder):
    pipe = tiny_pipeline(folder)
    result = run_bench(pipe, ["map_channel_invert"], model_name="tiny", count=2, num_pairs=(2, 1), seed=3,
                       num_steps=2, progress=False, ceiling=False)
    sweep = result["pairs_sweep"]
    assert sweep["num_pairs"] == [1, 2] and result["num_pairs"] == 2
    line = sweep["tasks"]["map_channel_invert"]
    assert line["main_metric"] == "ssim" and len(line["model"]) == len(line["best_baseline"]) == 2
    assert line["model"][-1] == result["tasks"]["map_channel_invert"]["scores"]["tiny"]["ssim"]
    assert "2 pairs |" in markdown_table(result)


def test_split_selects_declared_and_model_tasks():
    from lavin_core.evaluation.bench import split_tasks

    available = ["depth", "map_blur", "map_posterize", "unseen_depth", "invert"]
    assert split_tasks(available, "trained", ["depth"]) == ["depth"]
    assert split_tasks(available, "held-out", ["depth"]) == ["map_posterize", "unseen_depth", "invert"]
    assert split_tasks(available, "trained", None) == ["depth", "map_blur"]
    assert split_tasks(available, "all", ["map_blur"])[0] == "map_blur"
    with pytest.raises(ValueError, match="split must be"):
        split_tasks(available, "test", None)


def test_bench_command_takes_task_options_and_reports_unbuildable_tasks(folder, tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", "--model", str(folder), "--tasks", "depth", "--task-option", "depth:style=drawn",
                   "--task-option", "max_depth=12", "--count", "1", "--num-pairs", "1", "--steps", "2",
                   "--out", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    result = json.loads((out / "bench.json").read_text())
    assert result["task_options"] == {"depth": {"style": "drawn", "max_depth": 12}}
    assert main(["bench", "--model", str(folder), "--tasks", "depth", "--task-option", "depth:colour=red"]) == 2
    assert "has no option 'colour'" in capsys.readouterr().err
    from lavin_core.evaluation import buildable_tasks

    names, failed = buildable_tasks(32)
    assert "depth" in names and "folder" in failed and "path" in failed["folder"]


def test_the_example_plugins_task_is_benchmarked_with_its_options(folder, tmp_path, capsys):
    # the example plugin is installed (README quick start, CI); its silhouette task takes options
    out = tmp_path / "bench"
    status = main(["bench", "--model", str(folder), "--tasks", "silhouette", "--task-option", "silhouette:shapes=1",
                   "--task-option", "outline=true", "--count", "1", "--num-pairs", "1", "--steps", "2",
                   "--out", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    result = json.loads((out / "bench.json").read_text())
    assert result["task_options"] == {"silhouette": {"shapes": 1, "outline": True}}
    assert result["plugins"]["example"]["count"] == 1 and result["tasks"]["silhouette"]["held_out"] is True


def _bench_result(model: str, score: float, baseline: float, wins: bool) -> dict:
    return {"model": model, "baselines": ["copy_query", "per_frame_model"], "tasks": {"depth": {
        "main_metric": "abs_rel", "higher_is_better": {"abs_rel": False}, "held_out": False, "split": "trained",
        "scores": {model: {"abs_rel": score}, "copy_query": {"abs_rel": baseline},
                   "per_frame_model": {"abs_rel": score + 1}, "vae_ceiling": {"abs_rel": 0.01}},
        "best_baseline": "copy_query", "wins": wins}}}


def test_compare_bench_script_puts_runs_side_by_side_and_refuses_different_cases(tmp_path, capsys):
    script = load_script("compare_bench")
    for name, result in {"a": _bench_result("m1", 0.5, 0.3, False), "b": _bench_result("m2", 0.2, 0.3, True),
                         "c": _bench_result("m3", 0.2, 0.4, True)}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "bench.json").write_text(json.dumps(result))
    assert script.main([f"old={tmp_path / 'a'}", f"new={tmp_path / 'b' / 'bench.json'}", "--ceiling"]) == 0
    out = capsys.readouterr().out
    assert "| depth | trained | abs_rel ↓ | 0.500 | 0.200 | 0.010 | 0.010 | 0.300 (copy_query) | no | **yes** |" in out
    assert out.strip().endswith("old wins 0 of 1, new wins 1 of 1")
    with pytest.raises(SystemExit, match="baseline copy_query on depth scores 0.4 against 0.3"):
        script.main([f"old={tmp_path / 'a'}", f"other={tmp_path / 'c'}"])
    with pytest.raises(SystemExit, match="no bench.json there"):
        script.main([f"x={tmp_path / 'missing'}"])
    (tmp_path / "a" / "bench.json").write_text("{")
    with pytest.raises(SystemExit, match="not a bench.json"):
        script.main([f"x={tmp_path / 'a'}"])

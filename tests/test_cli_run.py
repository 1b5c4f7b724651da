"""``lavin run`` end to end on the CPU with randomly initialised tiny models, and its one-line errors."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

import registry
from lavin_core.cli import main
from lavin_core.context import Example, ExamplePair
from lavin_core.interfaces import PromptSampler, Task

pytest.importorskip("lavin_core.jdit")
pytest.importorskip("lavin_core.stvae")

MODELS = ["--dit", "random:lavin-tiny", "--vae", "random:lavin-tiny"]
FAST = ["--steps", "2", "--schedule", "uniform", "--quiet"]


def write_png(path, size, seed):
    array = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def files(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for index, name in enumerate(["cat", "dog_2"]):
        write_png(prompts / f"{name}_input.png", (40, 24), 2 * index)  # any size: resized to the query's
        write_png(prompts / f"{name}_target.png", (40, 24), 2 * index + 1)
    return {
        "dir": tmp_path,
        "prompts": str(prompts),
        "query": str(write_png(tmp_path / "query.png", (32, 48), 10)),
        "odd": str(write_png(tmp_path / "odd.png", (30, 35), 11)),
    }


def run(args, capsys):
    # These tests write one --out many times; the refusal of an existing file without
    # --overwrite is checked in test_reliability.py.
    status = main(["run", "--overwrite", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_run_writes_a_prediction_of_the_query_size(files, capsys):
    out = files["dir"] / "out" / "prediction.png"
    status, stdout, err = run(
        ["--task", "depth", "--query", files["query"], "--prompts", files["prompts"], *MODELS, *FAST, "--out", str(out)],
        capsys,
    )
    assert status == 0, err
    assert f"wrote {out} (48x32, 2 example pairs" in stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (48, 32)
        first = np.asarray(image)
    # Same seed, same file; the default official Euler grid runs too.
    status, _, err = run(
        ["--task", "depth", "--query", files["query"], "--prompts", files["prompts"], *MODELS, *FAST, "--out", str(out)],
        capsys,
    )
    assert status == 0 and np.array_equal(np.asarray(Image.open(out)), first)


def test_resize_makes_an_odd_query_fit(files, capsys):
    out = files["dir"] / "resized.png"
    status, _, err = run(
        ["--task", "x", "--query", files["odd"], "--prompts", files["prompts"], "--resize", *MODELS, *FAST, "--out", str(out)],
        capsys,
    )
    assert status == 0, err
    assert Image.open(out).size == (32, 32)


def test_official_sampler_defaults_run(files, capsys):
    out = files["dir"] / "official.png"
    status, _, err = run(
        ["--task", "x", "--query", files["query"], "--prompts", files["prompts"], "--num-pairs", "1",
         "--sampler", "adams-bashforth", *MODELS, "--quiet", "--out", str(out)],
        capsys,
    )
    assert status == 0, err
    assert Image.open(out).size == (48, 32)


def bad_cases(files):
    empty = files["dir"] / "empty"
    empty.mkdir()
    unmatched = files["dir"] / "unmatched"
    unmatched.mkdir()
    write_png(unmatched / "a_input.png", (8, 8), 0)
    write_png(unmatched / "b_target.png", (8, 8), 1)
    garbage = files["dir"] / "garbage.png"
    garbage.write_bytes(b"not an image")
    query, prompts = files["query"], files["prompts"]
    return [
        (["--query", str(files["dir"] / "missing.png"), "--prompts", prompts], "no image or clip file at"),
        (["--query", str(garbage), "--prompts", prompts], "is not a readable image or clip"),
        (["--query", query, "--prompts", str(empty)], "has no NAME_input.png / NAME_target.png pairs"),
        (["--query", query, "--prompts", str(files["dir"] / "nowhere")], "does not exist"),
        (["--query", query, "--prompts", str(unmatched)], r"unmatched template files: a_input \(no target\), b_target \(no input\)"),
        (["--query", files["odd"], "--prompts", prompts], r"35x30 \(WxH\).*multiples of 16; resize it to 32x32 .*--resize"),
        (["--query", query, "--prompts", prompts, "--steps", "-3"], "--steps: the number of steps must be an integer >= 1, got -3"),
        (["--query", query, "--prompts", prompts, "--steps", "7", "--schedule", "official"],
         "official schedule exists for 19, 29, 39 steps, got 7"),
        (["--query", query, "--prompts", prompts, "--guidance", "nan"], "--guidance: the guidance scale must be a finite number"),
        (["--query", query, "--prompts", prompts, "--guidance", "inf"], "--guidance: .* got inf"),
        (["--query", query, "--prompts", prompts, "--temperature", "nan"], "--temperature: the temperature must be a finite"),
        (["--query", query, "--prompts", prompts, "--num-pairs", "0"], "--num-pairs: the number of example pairs must be"),
        (["--query", query, "--prompts", prompts, "--processing-size", "-1"], "--processing-size: .* >= 0"),
        (["--query", query, "--prompts", prompts, "--sampler", "eulr"], "unknown sampler 'eulr'; did you mean 'euler'"),
    ]


@pytest.mark.reliability  # issue 19: --guidance nan/inf, --temperature nan, bad files and sizes
def test_bad_input_gets_one_clear_line(files, capsys):
    for args, message in bad_cases(files):
        status, _, err = run(["--task", "depth", *args, *MODELS, "--quiet", "--out", str(files["dir"] / "x.png")], capsys)
        assert status == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lavin run: error: "), err
        assert re.search(message, lines[0]), (message, lines[0])


def test_a_missing_checkpoint_is_one_line(files, capsys):
    status, _, err = run(
        ["--task", "x", "--query", files["query"], "--prompts", files["prompts"], "--dit", str(files["dir"] / "nope"),
         "--vae", "random:lavin-tiny", "--out", str(files["dir"] / "x.png")],
        capsys,
    )
    assert status == 2 and "no J-DiT checkpoint at" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# pairs from a registered task


class NoiseTask(Task):
    name = "cli-test-noise"
    description = "random pairs for the lavin run tests"
    metrics = ("l1",)
    higher_is_better = {"l1": False}

    def examples(self, count: int, *, seed: int = 0) -> Iterator[Example]:
        gen = torch.Generator().manual_seed(seed)
        for index in range(count):
            source = torch.rand(3, 1, 16, 16, generator=gen) * 2 - 1
            yield Example(pair=ExamplePair(input=source, target=-source), answer=None, id=f"noise-{index}")

    def render(self, answer):
        return answer

    def read(self, pixels):
        return pixels

    def score(self, predicted, truth):
        return {"l1": float((predicted - truth).abs().mean())}


class FirstPairs(PromptSampler):
    name = "cli-test-first"
    chosen: list[int] = []

    def select(self, pool, query, num_pairs, *, generator=None):
        FirstPairs.chosen = list(range(num_pairs))
        return FirstPairs.chosen


class Plugin:
    @registry.hookimpl
    def lavin_register_tasks(self, register):
        register(NoiseTask)

    @registry.hookimpl
    def lavin_register_prompt_samplers(self, register):
        register(FirstPairs)


def test_without_prompts_pairs_come_from_the_registered_task(files, capsys):
    name = registry.register_plugin(Plugin(), "cli-run-test-plugin")
    try:
        out = files["dir"] / "task.png"
        status, stdout, err = run(
            ["--task", "cli-test-noise", "--query", files["query"], "--num-pairs", "3", "--prompt-sampler", "cli-test-first",
             *MODELS, *FAST, "--out", str(out)],
            capsys,
        )
        assert status == 0, err
        assert "3 example pairs, task cli-test-noise" in stdout and FirstPairs.chosen == [0, 1, 2]
        assert Image.open(out).size == (48, 32)
        status, _, err = run(["--task", "no-such-task", "--query", files["query"], *MODELS, *FAST, "--out", str(out)], capsys)
        assert status == 2 and "unknown task 'no-such-task'" in err
    finally:
        registry.unregister_plugin(name)


def test_ensemble_combines_samples_with_the_registered_task(files, capsys, tmp_path):
    base = ["--task", "depth", "--query", files["query"], "--prompts", files["prompts"], *FAST]
    single, many = tmp_path / "one.png", tmp_path / "three.png"
    status, stdout, err = run([*base, *MODELS, "--out", str(single)], capsys)
    assert status == 0 and "samples combined" not in stdout  # random models recommend no ensemble
    status, stdout, err = run([*base, *MODELS, "--ensemble", "3", "--out", str(many)], capsys)
    assert status == 0, err
    assert "task depth, 3 samples combined)" in stdout and Image.open(many).size == (48, 32)
    assert not np.array_equal(np.asarray(Image.open(many)), np.asarray(Image.open(single)))
    # a free label (allowed with --prompts) averages its samples pixel by pixel
    status, stdout, err = run(["--task", "my-label", "--query", files["query"], "--prompts", files["prompts"], *FAST,
                               *MODELS, "--ensemble", "2", "--out", str(many)], capsys)
    assert status == 0 and "task my-label, 2 samples combined)" in stdout, err
    status, _, err = run([*base, *MODELS, "--ensemble", "0", "--out", str(many)], capsys)
    assert status == 2 and "--ensemble: the number of samples per query must be an integer >= 1, got 0" in err


def test_a_models_recommended_ensemble_is_the_default(files, capsys, tmp_path):
    import json

    from lavin_core.pretrained.folders import INDEX_FILE
    from tests.tiny_model import make_model_folder

    folder = make_model_folder(tmp_path / "model")
    index = json.loads((folder / INDEX_FILE).read_text())
    (folder / INDEX_FILE).write_text(json.dumps({**index, "ensemble_size": 2}))
    out = tmp_path / "p.png"
    common = ["--query", files["query"], "--prompts", files["prompts"], "--model", str(folder), *FAST, "--out", str(out)]
    status, stdout, err = run(["--task", "edges", *common], capsys)
    assert status == 0 and "task edges, 2 samples combined" in stdout, err
    status, stdout, err = run(["--task", "my-label", *common], capsys)  # a label: one sample, no error
    assert status == 0 and "samples combined" not in stdout, err


def test_prompts_alone_define_the_task_and_any_step_count_works(files, capsys, tmp_path):
    out = tmp_path / "p.png"
    status, stdout, err = run(["--query", files["query"], "--prompts", files["prompts"], *MODELS, "--steps", "4",
                               "--quiet", "--out", str(out)], capsys)
    assert status == 0, err
    assert "task from --prompts" in stdout and Image.open(out).size == (48, 32)


def test_neither_task_nor_prompts_is_one_line(files, capsys, tmp_path):
    status, _, err = run(["--query", files["query"], *MODELS, "--out", str(tmp_path / "p.png")], capsys)
    assert status == 2 and err.count("\n") == 1 and "--task NAME" in err and "--prompts DIR" in err


def test_run_encodes_each_example_once_whatever_the_number_of_samples(files, capsys, tmp_path, monkeypatch):
    from lavin_core.stvae import STVAE

    encoded = []
    original = STVAE.encode

    def counting(self, pixels, *args, **kwargs):
        encoded.append(pixels.shape[0])
        return original(self, pixels, *args, **kwargs)

    monkeypatch.setattr(STVAE, "encode", counting)
    status, stdout, err = run(["--task", "depth", "--query", files["query"], *MODELS, *FAST, "--num-pairs", "2",
                               "--ensemble", "4", "--out", str(tmp_path / "p.png")], capsys)
    assert status == 0 and "4 samples combined" in stdout, err
    assert sum(encoded) == 2 * 2 + 1  # two pairs (input and target) and the query, once each


@pytest.mark.reliability  # issue 19: the processing size, --num-pairs above the model's
def test_a_query_is_processed_at_the_models_size_and_resized_back(tmp_path, capsys):
    import json

    from lavin_core.pretrained.folders import INDEX_FILE
    from tests.tiny_model import make_model_folder

    folder = make_model_folder(tmp_path / "model")
    index = json.loads((folder / INDEX_FILE).read_text())
    (folder / INDEX_FILE).write_text(json.dumps({**index, "image_size": 64, "max_pairs": 1}))
    query = tmp_path / "big.png"
    write_png(query, (200, 120), 3)  # 120x200 (WxH), not multiples of 16: processed at 32x64, written back
    out = tmp_path / "p.png"
    status, stdout, err = run(["--task", "depth", "--query", str(query), "--model", str(folder), *FAST,
                               "--ensemble", "1", "--out", str(out)], capsys)
    assert status == 0, err
    assert Image.open(out).size == (120, 200) and "processed at 32x64" in stdout and "1 example pairs" in stdout
    status, _, err = run(["--task", "depth", "--query", str(query), "--model", str(folder), *FAST,
                          "--ensemble", "1", "--num-pairs", "3", "--out", str(tmp_path / "q.png")], capsys)
    assert status == 0 and "trained with at most 1 example pairs" in err


def test_task_options_and_a_task_drawn_per_context(files, capsys, monkeypatch):
    from lavin_plugins.tasks import SemanticSegmentationTask

    seen = []
    original = SemanticSegmentationTask.instance
    monkeypatch.setattr(SemanticSegmentationTask, "instance", lambda self, seed: seen.append(self.style) or original(self, seed))
    out = files["dir"] / "seg.png"
    status, stdout, err = run(["--task", "semantic_segmentation", "--task-option", "style=drawn", "--query",
                               files["query"], "--num-pairs", "2", *MODELS, *FAST, "--out", str(out)], capsys)
    assert status == 0, err
    assert seen == ["drawn"] and "2 example pairs" in stdout
    status, _, err = run(["--task", "semantic_segmentation", "--task-option", "palette=3", "--query", files["query"],
                          *MODELS, *FAST, "--out", str(out)], capsys)
    assert status == 2 and "no task among semantic_segmentation takes option 'palette'" in err


@pytest.mark.parametrize("command", ["run", "demo", "bench"])
def test_schedule_reaches_the_sampler_every_command_samples_with(command):
    """demo and bench sample through ``pipe.sampler``: ``--schedule`` must be in it, not only in the options."""
    import argparse

    from lavin_core.cli.sampling import add_model_arguments, add_sampling_arguments, open_pipeline, sampling_options

    parser = argparse.ArgumentParser(prog=f"lavin {command}")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    args = parser.parse_args([*MODELS, "--steps", "7", "--schedule", "shifted"])
    pipe, options = open_pipeline(args, sampling_options(args), combining=command != "run")
    assert options.schedule == "shifted" and pipe.sampler.schedule == "shifted"
    plain = parser.parse_args(MODELS)
    pipe, _ = open_pipeline(plain, sampling_options(plain), combining=True)
    assert pipe.sampler.schedule != "shifted"


def test_adaptation_flags_reach_the_pipelines_defaults_and_bad_ones_name_their_flag(capsys):
    """``--adapt-steps`` / ``--adapt-lr`` go into ``pipe.defaults``, which demo and bench sample with."""
    import argparse

    from lavin_core.cli.sampling import add_model_arguments, add_sampling_arguments, open_pipeline, sampling_options

    parser = argparse.ArgumentParser(prog="lavin bench")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    args = parser.parse_args([*MODELS, "--adapt-steps", "3", "--adapt-lr", "1e-3"])
    pipe, options = open_pipeline(args, sampling_options(args), combining=True)
    assert (options.adapt_steps, options.adapt_lr) == (3, 1e-3)
    assert (pipe.defaults.adapt_steps, pipe.defaults.adapt_lr) == (3, 1e-3)
    plain = parser.parse_args(MODELS)
    pipe, _ = open_pipeline(plain, sampling_options(plain), combining=True)
    assert pipe.defaults.adapt_steps == 0
    with pytest.raises(ValueError, match=r"^--adapt-steps: the number of adaptation steps must be an integer >= 0"):
        sampling_options(parser.parse_args([*MODELS, "--adapt-steps", "-2"]))


def test_a_task_the_model_never_saw_gets_the_adaptation_advice(files, capsys, tmp_path):
    import json

    from lavin_core.pretrained.folders import INDEX_FILE
    from tests.tiny_model import make_model_folder

    folder = make_model_folder(tmp_path / "model")
    index = json.loads((folder / INDEX_FILE).read_text())
    (folder / INDEX_FILE).write_text(json.dumps({**index, "trained_tasks": ["depth"]}))
    out = tmp_path / "p.png"
    common = ["--query", files["query"], "--model", str(folder), "--num-pairs", "2", *FAST, "--out", str(out)]
    status, _, err = run(["--task", "edges", *common], capsys)
    assert status == 0 and "not trained on task 'edges'" in err and "--adapt-steps 80" in err, err
    status, _, err = run(["--task", "depth", *common], capsys)  # a trained task: nothing to advise
    assert status == 0 and "not trained on" not in err, err
    status, _, err = run(["--task", "edges", "--adapt-steps", "1", *common], capsys)  # already adapting
    assert status == 0 and "not trained on" not in err, err
    status, _, err = run(["--task", "my-label", "--prompts", files["prompts"], *common], capsys)  # a label
    assert status == 0 and "not trained on" not in err, err

"""Compile only when the work repays it (a pure decision), ``model.compile`` true / false / "auto",
and a compiled training run that works."""

from __future__ import annotations

import json

import attrs
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lavin_core.jdit import get_preset
from lavin_core.pipeline import compile_policy
from lavin_core.pipeline.compile_policy import (
    ESTIMATES,
    CompileEstimate,
    compile_pays,
    jdit_gflop,
    sampling_gflop,
    should_compile,
)
from lavin_core.stvae import get_preset as vae_preset
from lavin_core.train.compile import resolve_compile, training_gflop
from lavin_core.train.config import ConfigError, ModelConfig, TrainConfig, dump_toml, from_dict, load_config

TINY = get_preset("lavin-tiny")
CPU = ESTIMATES["cpu"]
#: An estimate under which compiling pays soon (1.3x after 40 s, a warm Inductor cache): the
#: policy's decisions are tested under it; the shipped CPU estimate is more cautious.
PAYING = CompileEstimate(compile_seconds=40.0, eager_gflops=60.0, speedup=1.3)


@pytest.fixture
def paying_cpu(monkeypatch):
    monkeypatch.setitem(ESTIMATES, "cpu", PAYING)
    monkeypatch.setattr(compile_policy, "has_cpp_compiler", lambda: True)  # wherever the tests run
RECIPE = "configs/lavin-tiny/dit.toml"


def test_flops_per_token_of_lavin_tiny():
    # 4 blocks x (q, k, v 192x384 + out 192x192 + SwiGLU 3x192x512) weights, 2 FLOPs each per token
    assert jdit_gflop(TINY, 1000) == pytest.approx(2 * 4 * (192 * 384 + 192 * 192 + 3 * 192 * 512) * 1000 / 1e9)
    assert jdit_gflop(TINY, 1000, training=True) == pytest.approx(3 * jdit_gflop(TINY, 1000))


@given(st.floats(0, 1e7), st.floats(1, 1e4), st.floats(1, 1e6), st.floats(0.5, 4))
def test_compile_pays_exactly_when_the_saving_beats_the_cost(work, cost, gflops, speedup):
    estimate = CompileEstimate(compile_seconds=cost, eager_gflops=gflops, speedup=speedup)
    saved = work / gflops * (1 - 1 / speedup)
    assert compile_pays(work, estimate) == (speedup > 1 and saved > cost)
    assert not compile_pays(work, CompileEstimate(compile_seconds=cost, eager_gflops=gflops, speedup=1.0))


def test_one_lavin_run_never_compiles_a_whole_bench_does():
    # lavin-tiny's defaults: 19 steps, 6 samples per query, 3 pairs, 64 px (8x8 latents); 14 trained tasks
    one = sampling_gflop(TINY, predictions=6, num_steps=19, num_pairs=3, latent_side=8)
    demo = sampling_gflop(TINY, predictions=14 * 6, num_steps=19, num_pairs=3, latent_side=8)
    bench = sampling_gflop(TINY, predictions=14 * 16 * 6, num_steps=19, num_pairs=3, latent_side=8)
    assert [compile_pays(w, PAYING) for w in (one, demo, bench)] == [False, False, True]
    # the shipped CPU estimate (180 s for 1.25x): 14 tasks' bench is too short to repay it
    assert not any(compile_pays(w, CPU) for w in (one, demo, bench))
    assert sampling_gflop(TINY, predictions=1, num_steps=1, num_pairs=1, latent_side=8, guided=False) < \
        sampling_gflop(TINY, predictions=1, num_steps=1, num_pairs=1, latent_side=8)


def test_auto_never_compiles_on_a_cpu_without_a_cpp_compiler(paying_cpu, monkeypatch):
    assert should_compile("auto", 1e12, "cpu")
    monkeypatch.setattr(compile_policy, "has_cpp_compiler", lambda: False)
    assert not should_compile("auto", 1e12, "cpu") and should_compile(True, 0.0, "cpu")
    assert should_compile("auto", 1e12, "cuda")


def test_the_cpp_compiler_is_cxx_or_one_on_path(monkeypatch):
    found = {"g++"}
    monkeypatch.setattr(compile_policy.shutil, "which", lambda name: name if name in found else None)
    monkeypatch.delenv("CXX", raising=False)
    assert compile_policy.has_cpp_compiler()
    monkeypatch.setenv("CXX", "icpx")
    assert not compile_policy.has_cpp_compiler()
    found.add("icpx")
    assert compile_policy.has_cpp_compiler()


def test_the_cpu_training_recipes_compile_under_the_shipped_estimate(monkeypatch):
    monkeypatch.setattr(compile_policy, "has_cpp_compiler", lambda: True)
    for recipe in (RECIPE, "configs/lavin-tiny-icl/dit.toml"):
        assert resolve_compile(load_config(recipe, ['model.compile="auto"']), TINY, torch.device("cpu")), recipe


def test_choice_true_false_auto(paying_cpu):
    assert should_compile(True, 0.0, "cpu") and not should_compile(False, 1e12, "cpu")
    assert should_compile("auto", 1e12, "cpu") and not should_compile("auto", 1.0, "cpu")
    assert not should_compile("auto", 1e12, "mps")  # no estimate for that device: eager
    with pytest.raises(ValueError, match='true, false or "auto"'):
        should_compile("on", 1.0, "cpu")


def test_model_compile_is_true_false_or_auto():
    assert ModelConfig().compile == "auto"
    for value in (True, False, "auto"):
        assert from_dict(ModelConfig, {"compile": value}).compile == value
    with pytest.raises(ConfigError, match="compile"):
        from_dict(ModelConfig, {"compile": "on"})
    with pytest.raises(ValueError, match='true, false or "auto"'):
        ModelConfig(compile=1)
    config = TrainConfig(tasks={"depth": 1.0}, model=ModelConfig(compile=True))
    assert 'compile = true' in dump_toml(config) and 'compile = "auto"' in dump_toml(TrainConfig(tasks={"depth": 1.0}))


def _with_steps(config: TrainConfig, steps: int) -> TrainConfig:
    return attrs.evolve(config, run=attrs.evolve(config.run, steps=steps))


def test_auto_compiles_the_recipe_not_a_short_run_nor_the_vae_stage(paying_cpu):
    cpu = torch.device("cpu")
    recipe = load_config(RECIPE)
    assert recipe.model.compile == "auto" and training_gflop(recipe, TINY) > 1e5
    assert resolve_compile(recipe, TINY, cpu)
    assert not resolve_compile(_with_steps(recipe, 20), TINY, cpu)
    assert not resolve_compile(recipe, TINY, torch.device("mps"))
    # "auto" is the dit stage only; true compiles the repeated blocks of either stage
    assert not resolve_compile(_with_steps(recipe, 10**7), vae_preset("lavin-tiny"), cpu)
    forced = load_config(RECIPE, ["model.compile=true", "run.steps=1"])
    assert resolve_compile(forced, vae_preset("lavin-tiny"), cpu) and resolve_compile(forced, TINY, cpu)
    assert not resolve_compile(load_config(RECIPE, ["model.compile=false"]), TINY, cpu)


def test_the_default_demo_and_one_run_stay_eager_a_bench_compiles(paying_cpu):
    """Through the CLI's own model opening, on the shipped lavin-tiny and its recommended options."""
    from lavin_core.cli import build_parser
    from lavin_core.cli.demo import open_model
    from lavin_core.pipeline.compile_policy import compile_pipeline_if_it_pays

    args = build_parser().parse_args(["demo"])
    pipe, _, trained, size, options = open_model(args)
    assert not compile_pipeline_if_it_pays(pipe, options, queries=1, num_pairs=3, image_size=size)
    assert not compile_pipeline_if_it_pays(pipe, options, queries=len(trained), num_pairs=args.num_pairs,
                                           image_size=size)
    assert all(block._compiled_call_impl is None for block in pipe.denoiser.blocks)
    bench = build_parser().parse_args(["bench"])
    assert compile_pipeline_if_it_pays(pipe, options, queries=len(trained) * bench.count, num_pairs=3,
                                       image_size=size)
    assert all(block._compiled_call_impl is not None for block in pipe.denoiser.blocks)


def test_a_short_pipeline_run_stays_eager(tmp_path):
    from lavin_core.pipeline.compile_policy import compile_pipeline_if_it_pays
    from lavin_core.samplers.options import SamplingOptions
    from tests.tiny_model import make_model_folder, tiny_pipeline

    pipe = tiny_pipeline(make_model_folder(tmp_path / "model"))
    options = pipe.resolve(SamplingOptions(num_steps=2, num_samples=6))
    assert not compile_pipeline_if_it_pays(pipe, options, queries=14, num_pairs=3, image_size=64)
    assert all(block._compiled_call_impl is None for block in pipe.denoiser.blocks)


@pytest.mark.slow
def test_a_compiled_training_run_logs_its_compile_time_and_matches_eager(tmp_path):
    from safetensors.torch import load_file

    from lavin_core.train.toy import make_toy_workspace
    from lavin_core.train.trainer import train

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    # One pair and no null contexts: fixed shapes, so only the two block variants compile (minutes here).
    base = ["run.steps=2", "run.log_every=1", "checkpoint.every=2", "train.batch_size=2", "data.max_pairs=1",
            "train.ema_decay=0.0", "train.cfg_dropout=0.0", "train.precision='fp32'"]  # float32 tolerance
    eager = train(load_config(config_path, [*base, "model.compile=false"]), tmp_path / "eager")
    compiled = train(load_config(config_path, [*base, "model.compile=true"]), tmp_path / "compiled")
    records = [json.loads(line) for line in (tmp_path / "compiled" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["compile_s"] > 0
    assert "compile_s" not in (tmp_path / "eager" / "metrics.jsonl").read_text()
    a, b = load_file(str(eager / "model.safetensors")), load_file(str(compiled / "model.safetensors"))
    assert a.keys() == b.keys()  # the compiled blocks keep their parameter names
    for key in a:
        diff = (a[key] - b[key]).norm() / a[key].norm().clamp_min(1e-12)
        assert diff < 1e-4, key

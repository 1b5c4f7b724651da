"""Training configs: every key and type checked before any work, with the key path named."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.cli import main
from lavin_core.train.config import ConfigError, TrainConfig, dump_toml, load_config
from lavin_core.train.trainer import lr_factor

MINIMAL = "[tasks]\ndepth = 1.0\n"


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_authors(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.optimizer.lr == 1e-4
    assert (config.data.min_pairs, config.data.max_pairs) == (1, 8)
    assert config.tasks == {"depth": 1.0}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lrr=1e-3", r"optimizer\.lrr: unknown key; did you mean 'lr'"),
        ("optimizer.lr='fast'", r"optimizer\.lr: expected a number"),
        ("train.batch_size=2.5", r"train\.batch_size: expected int"),
        ("train.batch_size=0", r"batch_size"),
        ("run.stage='gan'", r"run\.stage: must be 'vae' or 'dit'"),
        ("model.gradient_checkpointing=1", r"model\.gradient_checkpointing: expected bool"),
        ("optimizer.betas=[0.9]", r"optimizer\.betas: expected a list of 2 values"),
        ("data.min_pairs=9", "min_pairs 9 is larger than max_pairs 8"),
        ("data.source='cache'", "needs caches ="),
        ("schedulee.decay='cosine'", r"schedulee: unknown key; did you mean 'schedule'"),
        ("vae.latent_noise=1.5", r"latent_noise"),
        ("vae.latent_noise=-0.1", r"latent_noise"),
    ],
)
def test_bad_values_name_their_key(tmp_path, override, message):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_tasks_are_required_and_positive(tmp_path):
    with pytest.raises(ConfigError, match="tasks"):
        load_config(write(tmp_path, "[run]\nsteps = 3\n"))
    with pytest.raises(ConfigError, match=r"tasks\.depth: mix weight must be positive"):
        load_config(write(tmp_path, "[tasks]\ndepth = 0\n"))


@settings(max_examples=20, deadline=None)
@given(
    lr=st.floats(1e-6, 1.0), steps=st.integers(1, 10**6), batch=st.integers(1, 512),
    decay=st.sampled_from(["constant", "cosine"]), clip=st.floats(0.0, 10.0), name=st.text(min_size=1, max_size=12),
    weights=st.dictionaries(st.from_regex(r"[a-z][a-z-]{0,8}", fullmatch=True), st.floats(0.01, 10.0),
                            min_size=1, max_size=4),
)
def test_resolved_config_round_trips_through_toml(tmp_path_factory, lr, steps, batch, decay, clip, name, weights):
    config = TrainConfig(tasks=weights)
    config = attrs.evolve(
        config,
        run=attrs.evolve(config.run, steps=steps, name=name),
        optimizer=attrs.evolve(config.optimizer, lr=lr),
        train=attrs.evolve(config.train, batch_size=batch, grad_clip=clip),
        schedule=attrs.evolve(config.schedule, decay=decay),
    )
    path = tmp_path_factory.mktemp("round") / "config.toml"
    path.write_text(dump_toml(config))
    assert load_config(path) == config


def test_set_overrides_parse_toml_values(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["optimizer.lr=3e-4", "run.name=my-run", "tasks.edges=0.5",
                                                    "optimizer.betas=[0.9, 0.95]"])
    assert config.optimizer.lr == 3e-4 and config.run.name == "my-run"
    assert config.tasks == {"depth": 1.0, "edges": 0.5}
    assert config.optimizer.betas == (0.9, 0.95)


def test_cli_reports_a_bad_key_in_one_line(tmp_path, capsys):
    config = write(tmp_path, MINIMAL + "[optimizer]\nlrr = 1.0\n")
    assert main(["train", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "optimizer.lrr" in err
    assert not (tmp_path / "r").exists()  # failed before any work


@settings(max_examples=30, deadline=None)
@given(step=st.integers(0, 999), warmup=st.integers(0, 100), ratio=st.floats(0.0, 1.0))
def test_lr_schedule_warms_up_then_stays_within_bounds(step, warmup, ratio):
    for decay in ("constant", "cosine"):
        factor = lr_factor(step, total_steps=1000, warmup_steps=warmup, decay=decay, min_lr_ratio=ratio)
        if step < warmup:
            assert factor == pytest.approx((step + 1) / warmup)
        elif decay == "constant":
            assert factor == 1.0
        else:
            assert ratio - 1e-12 <= factor <= 1.0 + 1e-12
    assert lr_factor(1000, total_steps=1000, warmup_steps=0, decay="cosine", min_lr_ratio=ratio) == pytest.approx(ratio)


CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("**/*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.optimizer.lr > 0 and config.tasks


def test_tiny_recipe_chains_the_vae_into_the_dit():
    folder = Path(__file__).parent.parent / "configs" / "lavin-tiny"
    vae, dit = load_config(folder / "vae.toml"), load_config(folder / "dit.toml")
    assert (vae.run.stage, dit.run.stage) == ("vae", "dit")
    # `lavin train configs/lavin-tiny/vae.toml` (from the repository root) writes runs/<run.name>/export,
    # which dit.toml reads: its paths resolve against its own folder.
    assert dit.model.vae == str(folder.parent.parent / "runs" / vae.run.name / "export")
    assert set(dit.tasks) <= set(vae.tasks)


def test_icl_decoder_recipe_trains_the_universe_and_keeps_the_latents():
    from lavin_plugins.tasks.universe import HELD_OUT, TRAINING_UNIVERSE

    folder = Path(__file__).parent.parent / "configs" / "lavin-tiny-icl"
    decoder, dit = load_config(folder / "vae-decoder.toml"), load_config(folder / "dit.toml")
    assert decoder.run.stage == "vae" and not decoder.vae.train_encoder  # the J-DiT's latents stay valid
    assert decoder.model.init == dit.model.vae == "lavin-tiny"  # the encoder that made its caches
    assert set(decoder.tasks) == set(dit.tasks) == set(TRAINING_UNIVERSE)
    assert not set(decoder.tasks) & set(HELD_OUT)
    for name, options in TRAINING_UNIVERSE.items():  # the renderings drawn per context, as the J-DiT saw them
        assert options.items() <= decoder.task_options.get(name, {}).items()


def test_plot_loss_cli_names_a_folder_without_metrics(tmp_path, capsys):
    assert main(["plot-loss", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_task_options_reach_the_tasks_and_round_trip_through_toml(tmp_path):
    from lavin_core.train.config import dump_toml, load_config
    from lavin_core.train.data import data_sources

    path = tmp_path / "c.toml"
    path.write_text('[tasks]\ndepth = 1.0\nedges = 1.0\n[task_options.depth]\nstyle = "drawn"\nmax_depth = 12\n'
                    '[data]\nimage_size = 32\n')
    config = load_config(path)
    assert config.task_options == {"depth": {"style": "drawn", "max_depth": 12}}
    (tmp_path / "again.toml").write_text(dump_toml(config))
    assert load_config(tmp_path / "again.toml") == config
    depth = next(t for t in data_sources(config) if t.name == "depth")
    assert depth.style == "drawn" and depth.max_depth == 12.0
    path.write_text('[tasks]\ndepth = 1.0\n[task_options.pose]\nstyle = "drawn"\n')
    with pytest.raises(ValueError, match="task_options names pose"):
        load_config(path)


@pytest.mark.parametrize("avx512_bf16, amx", [(False, False), (True, False), (False, True)])
def test_auto_precision_is_bf16_where_the_cpu_multiplies_bf16_natively(monkeypatch, avx512_bf16, amx):
    import torch

    from lavin_core.devices import autocast_dtype, native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    cpu = torch.device("cpu")
    assert native_bf16(cpu) == (avx512_bf16 or amx)
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if avx512_bf16 or amx else None)
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16 and not native_bf16(torch.device("mps"))

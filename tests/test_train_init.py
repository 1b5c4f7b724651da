"""Fine-tuning: ``model.init`` starts a run from saved weights; ``vae.train_encoder = false`` freezes the encoder, ``vae.train_only`` all but the named parts."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from lavin_core.errors import CheckpointError
from lavin_core.pretrained import get_model
from lavin_core.train.checkpointing import read_model_weights
from lavin_core.train.config import ConfigError, load_config
from lavin_core.train.toy import make_toy_workspace
from lavin_core.train.freeze import freeze_all_but, under
from lavin_core.train.trainer import train

BASE = ["run.steps=2", "checkpoint.every=2", "train.batch_size=2", "data.max_pairs=1", "train.ema_decay=0.0"]


def _weights(run, name: str = "model") -> dict[str, torch.Tensor]:
    return read_model_weights(run / "checkpoints" / "step-00000002", name)


def test_a_dit_run_starts_from_the_init_weights(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    first = train(load_config(config_path, BASE), tmp_path / "first")
    # lr 0: the weights never move, so the second run ends exactly where the first one's export was.
    second = tmp_path / "second"
    train(load_config(config_path, [*BASE, "optimizer.lr=1e-30", f'model.init="{first.as_posix()}"']), second)
    exported = load_file(str(first / "model.safetensors"))
    continued = _weights(second)
    assert exported.keys() == continued.keys()
    assert all(torch.allclose(exported[k], continued[k], atol=1e-6) for k in exported)
    # and not what the same run without init (a seeded random start) gives
    fresh = tmp_path / "fresh"
    train(load_config(config_path, [*BASE, "optimizer.lr=1e-30"]), fresh)
    random_start = _weights(fresh)
    assert any(not torch.allclose(random_start[k], continued[k]) for k in random_start)


def test_init_from_another_architecture_names_the_fields(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    first = train(load_config(config_path, BASE), tmp_path / "first")
    other = load_config(config_path, [*BASE, 'model.preset="lavin-small"', f'model.init="{first.as_posix()}"'])
    with pytest.raises(CheckpointError, match=r"another architecture: hidden_size=192 \(wanted 576\)"):
        train(other, tmp_path / "second")


def test_resuming_does_not_read_the_init_weights_again(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    first = train(load_config(config_path, BASE), tmp_path / "first")
    run = tmp_path / "run"
    init = [f'model.init="{first.as_posix()}"']
    train(load_config(config_path, [*BASE, *init]), run)
    shutil.rmtree(first)  # the checkpoint holds the weights now; init is not needed to go on
    train(load_config(config_path, [*BASE, *init, "run.steps=3", "checkpoint.every=1"]), run, resume=True)
    assert (run / "checkpoints" / "step-00000003").is_dir()


def test_a_frozen_encoder_keeps_the_latents_and_trains_the_decoder(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    vae = tmp_path / "vae"
    run = tmp_path / "decoder"
    train(load_config(config_path, [*BASE, 'run.stage="vae"', f'model.init="{vae.as_posix()}"',
                                    "vae.train_encoder=false", "vae.adversarial_weight=0.0"]), run)
    before = load_file(str(vae / "model.safetensors"))
    after = _weights(run)
    encoder = [k for k in before if k.startswith("encoder.")]
    decoder = [k for k in before if k.startswith("decoder.")]
    assert encoder and decoder
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)


def test_init_and_vae_take_a_shipped_model_name(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    run = tmp_path / "run"
    train(load_config(config_path, [*BASE, "optimizer.lr=1e-30", 'model.init="lavin-tiny"',
                                    'model.vae="lavin-tiny"']), run)
    shipped = load_file(str(get_model("lavin-tiny").path / "dit" / "model.safetensors"))
    continued = _weights(run)
    assert all(torch.allclose(shipped[k].float(), continued[k], atol=1e-6) for k in shipped)


def test_a_frozen_encoder_without_init_is_refused(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    with pytest.raises(ConfigError, match="vae.train_encoder = false .* set model.init"):
        load_config(config_path, ['run.stage="vae"', "vae.train_encoder=false"])


def test_train_only_trains_the_named_part_and_freezes_the_rest(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    vae = tmp_path / "vae"
    run = tmp_path / "part"
    part = "decoder.conv_out"
    train(load_config(config_path, [*BASE, 'run.stage="vae"', f'model.init="{vae.as_posix()}"',
                                    f'vae.train_only=["{part}"]', "vae.adversarial_weight=0.0",
                                    'vae.reconstruction="mse"']), run)
    assert 'reconstruction = "mse"' in (run / "config.toml").read_text()
    before = load_file(str(vae / "model.safetensors"))
    after = _weights(run)
    inside = [k for k in before if under(k, part)]
    assert inside and len(inside) < len(before)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in inside)  # encoder and decoder alike
    assert any(not torch.equal(before[k], after[k]) for k in inside)


def test_train_only_without_the_encoder_needs_init_and_names_what_it_misses(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    with pytest.raises(ConfigError, match=r"vae.train_only = \['decoder.copy'\] keeps the encoder .* set model.init"):
        load_config(config_path, ['run.stage="vae"', 'vae.train_only=["decoder.copy"]'])
    with pytest.raises(ConfigError, match="'decoder..copy', which is not a module path"):
        load_config(config_path, ['run.stage="vae"', 'vae.train_only=["decoder..copy"]'])
    with pytest.raises(ConfigError, match="vae.reconstruction: must be 'l1' or 'mse', got 'l2'"):
        load_config(config_path, ['vae.reconstruction="l2"'])
    # naming the encoder trains it, so no init is needed
    assert not load_config(config_path, ['run.stage="vae"', 'vae.train_only=["encoder", "decoder"]']).vae.encoder_frozen


def test_freeze_all_but_names_a_path_that_covers_nothing():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    assert freeze_all_but(model, ["1"]) == 3
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    with pytest.raises(ValueError, match=r"'1.bais', which covers no parameter .*parts under '1': 1"):
        freeze_all_but(model, ["1.bais"])
    with pytest.raises(ValueError, match=r"'copy', which covers no parameter .*top-level parts: 0, 1"):
        freeze_all_but(model, ["copy"])

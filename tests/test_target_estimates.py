"""A decoder trained on a J-DiT's estimates (``vae.denoiser``): the training pass decodes given
latents, estimate steps are the share asked for, the estimator samples one latent answer per
context in the encoder's space, reproducibly, and the vae stage wires it all."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.data.loader import ContextLoader
from lavin_core.stvae import STVAE
from lavin_core.train.estimates import TargetEstimator, is_estimate_step
from tests.tiny_model import make_model_folder


@settings(max_examples=50, deadline=None)
@given(share=st.floats(0.0, 1.0), steps=st.integers(1, 400))
def test_estimate_steps_are_the_share_asked_for_evenly_spread(share, steps):
    flags = [is_estimate_step(step, share) for step in range(steps)]
    assert sum(flags) == int(steps * share)
    if share == 1.0:
        assert all(flags)
    if 0 < share <= 0.5:  # never two in a row
        assert not any(a and b for a, b in zip(flags, flags[1:]))


def test_the_training_pass_decodes_given_latents_in_place_of_the_posteriors():
    torch.manual_seed(0)
    vae = STVAE.from_preset("lavin-tiny").eval()
    pixels = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    latents = torch.randn(2, 16, 1, 4, 4)
    reconstruction, posterior = vae(pixels, latents=latents, latent_noise=0.5)
    assert torch.equal(reconstruction, vae.decode_raw(vae.denormalize(latents)))  # no noise on estimates
    assert torch.equal(posterior.mean, vae.posterior(pixels).mean)  # the truth's posterior, for the KL term
    assert not torch.allclose(reconstruction, vae(pixels)[0])


def _batch(size: int = 32, contexts: int = 3):
    from lavin_core.evaluation.cases import build_task

    loader = ContextLoader([build_task("colorization", size=size)], batch_size=contexts, min_pairs=2, max_pairs=2, seed=3)
    return loader.batch(0)


def test_the_estimator_samples_one_answer_per_context_in_the_encoders_space(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    encoder = STVAE.from_pretrained(str(folder / "vae"))
    estimator = TargetEstimator.load(str(folder), encoder=encoder, num_steps=2, precision="fp32")
    batch = _batch()
    latents = estimator(batch, torch.Generator().manual_seed(1))
    assert latents.shape == encoder.encode(batch.target).shape and torch.isfinite(latents).all()
    assert torch.equal(latents, estimator(batch, torch.Generator().manual_seed(1)))
    assert not torch.equal(latents, estimator(batch, torch.Generator().manual_seed(2)))
    assert not any(p.requires_grad for p in estimator.pipe.denoiser.parameters())


def test_a_trained_encoder_cannot_take_a_denoisers_estimates(tmp_path):
    from lavin_core.train.config import load_config
    from lavin_core.train.toy import make_toy_workspace

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    with pytest.raises(ValueError, match="vae.denoiser = 'lavin-tiny-icl' .* set vae.train_encoder = false"):
        load_config(config_path, ['run.stage="vae"', 'vae.denoiser="lavin-tiny-icl"'])


@pytest.mark.slow
def test_the_vae_stage_decodes_estimates_on_its_share_of_steps(tmp_path):
    import json

    from lavin_core.train import train
    from lavin_core.train.config import load_config
    from lavin_core.train.toy import make_toy_workspace

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    make_model_folder(tmp_path / "model")
    STVAE.from_pretrained(str(tmp_path / "model" / "vae")).with_query_guide().save_pretrained(str(tmp_path / "init"))
    config = load_config(config_path, ['run.stage="vae"', "run.steps=3", "run.log_every=1", "checkpoint.every=3",
                                       "train.batch_size=2", 'model.preset="lavin-tiny-guided"',
                                       f'model.init="{(tmp_path / "init").as_posix()}"', "vae.train_encoder=false",
                                       "train.precision='fp32'", f'vae.denoiser="{(tmp_path / "model").as_posix()}"',
                                       "vae.estimate_share=0.5", "vae.estimate_steps=2", "data.max_pairs=2"])
    train(config, tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    flags = [line["estimates"] for line in lines if "estimates" in line]
    assert flags == [0.0, 1.0, 0.0]
    trained = STVAE.from_pretrained(str(tmp_path / "run" / "export"))
    start = STVAE.from_pretrained(str(tmp_path / "init"))
    assert all(torch.equal(a, b) for a, b in zip(trained.encoder.state_dict().values(), start.encoder.state_dict().values()))

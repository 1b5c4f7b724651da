"""The query-guided ST-VAE decoder (``lavin_core.stvae.guide``): shapes, the zero start, errors, and
that pipelines, bench ceilings and training hand each answer its own query."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.pipeline import InContextPipeline
from lavin_core.samplers import EulerSampler
from lavin_core.stvae import STVAE, STVAEConfig, get_preset
from lavin_core.stvae.guide import guide_frames
from lavin_core.stvae.tiling import TilingConfig
from tests.test_pipeline import InContextOracle, UnshuffleEncoder, make_context

ROOT = Path(__file__).resolve().parents[1]
MINI = STVAEConfig(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                   latent_shift=0.1, latent_scale=1.5)


def pixels(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def mini_pair() -> tuple[STVAE, STVAE]:
    torch.manual_seed(0)
    plain = STVAE(MINI).eval()
    return plain, plain.with_query_guide().eval()


def randomize_guide(vae: STVAE, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in vae.decoder.guide.projections.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


# -- the guide's frames ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(query_frames=st.sampled_from([1, 5, 9]), frames=st.sampled_from([1, 5, 9]),
       side=st.sampled_from([8, 16]), size=st.sampled_from([None, (16, 24)]))
def test_the_guide_is_the_query_or_its_last_frame_repeated(query_frames, frames, side, size):
    query = pixels(2, 3, query_frames, side, side)
    guide = guide_frames(query, frames, size)
    assert guide.shape == (2, 3, frames, *(size or (side, side)))
    if size is None:
        expected = query if query_frames == frames else query[:, :, -1:].expand(-1, -1, frames, -1, -1)
        assert torch.equal(guide, expected)


def test_guide_frames_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"must be \(B, 3, T, H, W\)"):
        guide_frames(torch.zeros(3, 1, 8, 8), 1)
    with pytest.raises(ValueError, match="at least one frame"):
        guide_frames(torch.zeros(1, 3, 1, 8, 8), 0)


# -- the decoder -----------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(frames=st.sampled_from([1, 5]), side=st.sampled_from([16, 32]))
def test_a_new_guide_branch_decodes_exactly_as_before(frames, side):
    plain, guided = mini_pair()
    with torch.no_grad():
        latents = plain.encode(pixels(2, 3, frames, side, side))
        guide = pixels(2, 3, frames, side, side, seed=5)
        assert torch.equal(plain.decode(latents), guided.decode(latents, guide=guide))
        assert torch.equal(plain.decode(latents), guided.decode(latents))


def test_a_trained_branch_passes_the_query_through_and_only_its_own():
    _, guided = mini_pair()
    randomize_guide(guided)
    latents = guided.encode(pixels(2, 3, 1, 16, 16))
    guide = pixels(2, 3, 1, 16, 16, seed=3)
    with torch.no_grad():
        both = guided.decode(latents, guide=guide)
        changed = guide.clone()
        changed[1] = pixels(1, 3, 1, 16, 16, seed=4)[0]
        other = guided.decode(latents, guide=changed)
    assert not torch.allclose(both, guided.decode(latents))  # the guide is used
    assert torch.equal(both[0], other[0]) and not torch.allclose(both[1], other[1])  # per sample


def test_guide_errors_name_the_problem_and_the_fix():
    plain, guided = mini_pair()
    latents = plain.encode(pixels(1, 3, 1, 16, 16))
    with pytest.raises(ValueError, match="takes no guide.*query_guide is false"):
        plain.decode(latents, guide=pixels(1, 3, 1, 16, 16))
    with pytest.raises(ValueError, match=r"answer's pixel shape \(1, 3, 1, 16, 16\).*guide_frames"):
        guided.decode(latents, guide=pixels(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN or infinite"):
        guided.decode(latents, guide=torch.full((1, 3, 1, 16, 16), float("nan")))
    guided.enable_tiling(TilingConfig(tile_size=16, tile_overlap=8))
    with pytest.raises(ValueError, match="tiled decoding takes no guide; call disable_tiling"):
        guided.decode(latents, guide=pixels(1, 3, 1, 16, 16))
    with pytest.raises(ValueError, match="already has a query-guided decoder"):
        guided.with_query_guide()


def test_guided_weights_round_trip_and_old_folders_load_unguided(tmp_path):
    plain, guided = mini_pair()
    randomize_guide(guided)
    guided.save_pretrained(str(tmp_path / "guided"))
    plain.save_pretrained(str(tmp_path / "plain"))
    loaded = STVAE.from_pretrained(str(tmp_path / "guided"))
    assert loaded.takes_guide and loaded.config == guided.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), guided.state_dict().values()))
    # a folder written before the field existed has no "query_guide" in its config
    config_file = tmp_path / "plain" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["query_guide"]
    config_file.write_text(json.dumps(saved))
    assert not STVAE.from_pretrained(str(tmp_path / "plain")).takes_guide
    assert get_preset("lavin-tiny-guided") == attrs.evolve(get_preset("lavin-tiny"), query_guide=True)


# -- pipelines hand each answer its own query ------------------------------------------------------


class GuideEcho(UnshuffleEncoder):
    """Decodes to the guide itself: a prediction then equals the query it was decoded with."""

    takes_guide = True

    def decode(self, latents, guide=None):
        assert guide is not None, "a guided encoder was decoded without its guide"
        return guide


def test_every_sample_is_decoded_with_its_own_query_across_shapes_and_batches():
    contexts = [make_context(0), make_context(1, size=(16, 8)), make_context(2, frames=5), make_context(3)]
    pipe = InContextPipeline(GuideEcho(), InContextOracle(), EulerSampler())
    out = pipe(contexts, num_samples=3, num_steps=2, batch_size=2, progress=False)
    for context, samples in zip(contexts, out.samples):
        assert len(samples) == 3
        assert all(torch.allclose(sample, context.query) for sample in samples)
    # the bench's round trip of the truth gets the query too
    ceilings = pipe.reconstruct([c.pairs[0].target for c in contexts], [c.query for c in contexts])
    assert all(torch.allclose(r, c.query) for r, c in zip(ceilings, contexts))


def test_an_unguided_encoder_is_never_handed_a_guide():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    contexts = [make_context(0), make_context(1)]
    out = pipe(contexts, num_steps=2, progress=False)
    assert len(out.predictions) == 2
    assert len(pipe.reconstruct([c.query for c in contexts], [c.query for c in contexts])) == 2


def test_decode_checks_one_guide_per_latent():
    pipe = InContextPipeline(GuideEcho(), InContextOracle(), EulerSampler())
    latents = [torch.zeros(12, 1, 4, 4)] * 2
    with pytest.raises(ValueError, match="got 1 guides for 2 latents"):
        pipe.decode(latents, guides=[torch.zeros(3, 1, 8, 8)])


# -- training and the script -----------------------------------------------------------------------


def train_toy_decoder(tmp_path: Path, extend, preset: str, *overrides: str) -> tuple[STVAE, STVAE]:
    """``(start, trained)``: the toy workspace's ST-VAE extended by ``extend`` (e.g. ``STVAE.with_query_guide``),
    then 2 steps of the vae stage on it with ``model.preset = preset``, encoder frozen."""
    from lavin_core.train import train
    from lavin_core.train.config import load_config
    from lavin_core.train.toy import make_toy_workspace

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    extend(STVAE.from_pretrained(str(tmp_path / "vae"))).save_pretrained(str(tmp_path / "init"))
    config = load_config(config_path, ['run.stage="vae"', "run.steps=2", "run.log_every=1", "checkpoint.every=2",
                                       "train.batch_size=2", f'model.preset="{preset}"',
                                       f'model.init="{(tmp_path / "init").as_posix()}"',
                                       "vae.train_encoder=false", "train.precision='fp32'", *overrides])
    train(config, tmp_path / "run")
    return STVAE.from_pretrained(str(tmp_path / "init")), STVAE.from_pretrained(str(tmp_path / "run" / "export"))


@pytest.mark.slow
def test_the_vae_stage_trains_a_guided_decoder_on_targets_guided_by_their_queries(tmp_path):
    start, trained = train_toy_decoder(tmp_path, STVAE.with_query_guide, "lavin-tiny-guided", "vae.latent_noise=0.3")
    assert "latent_noise = 0.3" in (tmp_path / "run" / "config.toml").read_text()
    assert trained.takes_guide
    # the branch left zero: it got gradients from targets decoded with their queries
    assert any(p.abs().sum() > 0 for p in trained.decoder.guide.projections.parameters())
    assert all(torch.equal(a, b) for a, b in zip(trained.encoder.state_dict().values(), start.encoder.state_dict().values()))


def test_add_query_guide_script_writes_an_equal_decoder_and_never_overwrites(tmp_path):
    plain, _ = mini_pair()
    plain.save_pretrained(str(tmp_path / "plain"))
    script = [sys.executable, str(ROOT / "scripts" / "add_query_guide.py")]
    done = subprocess.run([*script, str(tmp_path / "plain"), "--out", str(tmp_path / "guided")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "output equal to" in done.stderr and STVAE.from_pretrained(str(tmp_path / "guided")).takes_guide
    again = subprocess.run([*script, str(tmp_path / "plain"), "--out", str(tmp_path / "guided")],
                           capture_output=True, text=True, cwd=ROOT)
    assert again.returncode != 0 and "already exists" in again.stderr
    twice = subprocess.run([*script, str(tmp_path / "guided"), "--out", str(tmp_path / "twice")],
                           capture_output=True, text=True, cwd=ROOT)
    assert twice.returncode != 0 and "already has a query-guided decoder" in twice.stderr
    assert not (tmp_path / "twice").exists()

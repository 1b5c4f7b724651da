"""The copy gate of a query-guided decoder (``lavin_core.stvae.copy_gate``): its start, the
blend's bounds, an exact copy when open, configs and folders, training and the script."""

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

from lavin_core.stvae import STVAE, get_preset
from lavin_core.stvae.config import STVAEConfig
from lavin_core.stvae.copy_gate import START_GATE, CopyGate
from tests.test_query_guide import MINI, pixels, randomize_guide, train_toy_decoder

ROOT = Path(__file__).resolve().parents[1]


def guided_and_gated() -> tuple[STVAE, STVAE]:
    torch.manual_seed(0)
    guided = STVAE(MINI).with_query_guide().eval()
    randomize_guide(guided)
    return guided, guided.with_copy_gate().eval()


def open_gate(vae: STVAE, bias: float) -> None:
    """Every gate weight random but the output bias ``bias``: ``g`` is 1 wherever ``bias`` dominates."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in vae.decoder.copy.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        vae.decoder.copy.net[-1].bias.fill_(bias)


@settings(max_examples=6, deadline=None)
@given(frames=st.sampled_from([1, 5]), side=st.sampled_from([16, 32]))
def test_a_new_copy_gate_decodes_as_before_but_for_its_start(frames, side):
    guided, gated = guided_and_gated()
    with torch.no_grad():
        latents = guided.encode(pixels(2, 3, frames, side, side))
        guide = pixels(2, 3, frames, side, side, seed=5)
        raw = guided.denormalize(latents)
        before, after = guided.decode_raw(raw, guide=guide), gated.decode_raw(raw, guide=guide)
        assert torch.allclose(after, torch.lerp(before, guide, START_GATE), atol=1e-6)
        assert torch.equal(guided.decode(latents), gated.decode(latents))  # no guide: no gate


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), frames=st.sampled_from([1, 3]), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_the_blend_lies_between_the_decoders_pixels_and_the_guides(seed, frames, scale):
    generator = torch.Generator().manual_seed(seed)
    gate = CopyGate(feature_channels=4, guide_channels=5)
    with torch.no_grad():
        for parameter in gate.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
        features, guide_features = torch.randn(2, 4, frames, 8, 8), torch.randn(2, 5, frames, 8, 8)
        decoded, guide = torch.randn(2, 3, frames, 8, 8) * 2, torch.rand(2, 3, frames, 8, 8) * 2 - 1
        g = gate.gate(features, guide_features, decoded, guide)
        out = gate(features, guide_features, decoded, guide)
    assert g.shape == (2, 1, frames, 8, 8) and bool(((g >= 0) & (g <= 1)).all())
    low, high = torch.minimum(decoded, guide), torch.maximum(decoded, guide)
    assert bool(((out >= low - 1e-5) & (out <= high + 1e-5)).all())


def test_an_open_gate_returns_the_query_exactly_and_a_shut_one_the_decoder():
    guided, gated = guided_and_gated()
    latents = guided.encode(pixels(2, 3, 1, 16, 16))
    guide = pixels(2, 3, 1, 16, 16, seed=3)
    with torch.no_grad():
        open_gate(gated, 50.0)
        assert torch.equal(gated.decode(latents, guide=guide), guide)
        open_gate(gated, -50.0)
        assert torch.allclose(gated.decode(latents, guide=guide), guided.decode(latents, guide=guide), atol=1e-6)


def test_the_start_gets_gradients():
    _, gated = guided_and_gated()
    gated.train()
    latents = gated.encode(pixels(2, 3, 1, 16, 16))
    guide = pixels(2, 3, 1, 16, 16, seed=3)
    loss = (gated.decode_raw(gated.denormalize(latents), guide=guide) - guide).abs().mean()
    loss.backward()
    assert gated.decoder.copy.net[-1].weight.grad.abs().sum() > 0


def test_configs_folders_and_errors():
    with pytest.raises(ValueError, match="query_copy=True needs query_guide=True"):
        STVAEConfig(query_copy=True)
    assert get_preset("lavin-tiny-copy") == attrs.evolve(get_preset("lavin-tiny"), query_guide=True, query_copy=True)
    guided, gated = guided_and_gated()
    with pytest.raises(ValueError, match="already has a copy gate"):
        gated.with_copy_gate()
    # a plain decoder gets the guide (at zero) and the gate (at its start) at once
    torch.manual_seed(0)
    plain = STVAE(MINI).eval()
    both = plain.with_copy_gate().eval()
    raw, guide = plain.denormalize(plain.encode(pixels(1, 3, 1, 16, 16))), pixels(1, 3, 1, 16, 16, seed=2)
    with torch.no_grad():
        assert torch.allclose(both.decode_raw(raw, guide=guide), torch.lerp(plain.decode_raw(raw), guide, START_GATE),
                              atol=1e-6)


def test_gated_weights_round_trip_and_guided_folders_load_without_a_gate(tmp_path):
    guided, gated = guided_and_gated()
    open_gate(gated, 0.3)
    gated.save_pretrained(str(tmp_path / "gated"))
    loaded = STVAE.from_pretrained(str(tmp_path / "gated"))
    assert loaded.config == gated.config and loaded.decoder.copy is not None
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), gated.state_dict().values()))
    guided.save_pretrained(str(tmp_path / "guided"))
    config_file = tmp_path / "guided" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["query_copy"]  # a folder written before the field existed
    config_file.write_text(json.dumps(saved))
    assert STVAE.from_pretrained(str(tmp_path / "guided")).decoder.copy is None


@pytest.mark.slow
def test_the_vae_stage_trains_the_gate(tmp_path):
    start, trained = train_toy_decoder(tmp_path, STVAE.with_copy_gate, "lavin-tiny-copy")
    assert trained.decoder.copy is not None
    assert not torch.equal(trained.decoder.copy.net[-1].weight, start.decoder.copy.net[-1].weight)  # it left its start


def test_add_query_guide_script_adds_a_copy_gate_that_decodes_as_before(tmp_path):
    guided, _ = guided_and_gated()
    guided.save_pretrained(str(tmp_path / "guided"))
    script = [sys.executable, str(ROOT / "scripts" / "add_query_guide.py")]
    done = subprocess.run([*script, str(tmp_path / "guided"), "--copy-gate", "--out", str(tmp_path / "gated")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "with a copy gate" in done.stderr and "output equal to" in done.stderr
    assert STVAE.from_pretrained(str(tmp_path / "gated")).decoder.copy is not None
    twice = subprocess.run([*script, str(tmp_path / "gated"), "--copy-gate", "--out", str(tmp_path / "twice")],
                           capture_output=True, text=True, cwd=ROOT)
    assert twice.returncode != 0 and "already has a copy gate" in twice.stderr
    assert not (tmp_path / "twice").exists()

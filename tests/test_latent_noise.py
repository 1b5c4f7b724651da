"""Decoder noise augmentation: noise of a bounded share of each sample's latent RMS, reproducible,
and wired from ``vae.latent_noise`` into the vae stage's decoding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.stvae import STVAE
from lavin_core.stvae.latent_noise import noisy_latents


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), frames=st.integers(1, 3), side=st.integers(4, 12),
       max_noise=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_noise_is_a_bounded_share_of_each_samples_rms_and_reproducible(batch, frames, side, max_noise, seed):
    z = torch.randn(batch, 16, frames, side, side) * torch.logspace(-2, 2, batch).view(-1, 1, 1, 1, 1)
    noisy = noisy_latents(z, max_noise, torch.Generator().manual_seed(seed))
    assert noisy.shape == z.shape and noisy.dtype == z.dtype
    assert torch.equal(noisy, noisy_latents(z, max_noise, torch.Generator().manual_seed(seed)))
    share = ((noisy - z).pow(2).mean(dim=(1, 2, 3, 4)) / z.pow(2).mean(dim=(1, 2, 3, 4))).sqrt()
    # the noise scales with each sample's own RMS (four decades apart here), never past max_noise
    # but for the sampling error of the noise's std (at least 1024 values per sample)
    assert bool((share <= max_noise * 1.25).all())


def test_zero_noise_is_the_latents_themselves_and_bad_amounts_are_refused():
    z = torch.randn(2, 16, 1, 8, 8)
    assert noisy_latents(z, 0.0) is z
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="max_noise must be between 0 and 1"):
            noisy_latents(z, bad)


def test_the_training_pass_decodes_noisy_latents_only_when_asked():
    torch.manual_seed(0)
    vae = STVAE.from_preset("lavin-tiny").eval()
    pixels = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    clean = vae(pixels)[0]
    assert torch.equal(clean, vae(pixels, latent_noise=0.0)[0])
    noisy = vae(pixels, generator=torch.Generator().manual_seed(1), latent_noise=0.5)[0]
    assert not torch.allclose(noisy, vae(pixels, generator=torch.Generator().manual_seed(1))[0])

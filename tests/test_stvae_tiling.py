"""Tiled ST-VAE encoding and decoding: the tiling arithmetic is exact, the network's results agree."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from lavin_core.stvae import STVAE, STVAEConfig, TilingConfig
from lavin_core.stvae.layers import double_time_keep_first, halve_time_keep_first
from lavin_core.stvae.tiling import (
    chunk_plan,
    edge_ramp,
    tile_starts,
    tiled_decode,
    tiled_encode_moments,
    tiled_spatial,
)

DATA = Path(__file__).parent / "data"
SMALL = STVAEConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=2, norm_num_groups=32)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def smooth_pixels(shape, low, seed=0):
    """Random pixels with structure at ``low`` points per side, upsampled to ``shape`` (B, 3, T, H, W)."""
    coarse = torch.randn(*shape[:2], shape[2], low, low, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=shape[2:], mode="trilinear").clamp(-1, 1)


# -- the arithmetic -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(length=st.integers(1, 200), tile=st.integers(2, 64), data=st.data())
def test_tiles_cover_the_axis_with_the_overlap(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and min(length, starts[-1] + tile) == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert 0 < b - a <= tile - overlap


@settings(max_examples=30, deadline=None)
@given(num_latents=st.integers(1, 12), chunk=st.integers(1, 5), context=st.integers(0, 3))
def test_chunks_partition_the_latent_frames(num_latents, chunk, context):
    plan = chunk_plan(num_latents, chunk, context)
    kept = [i for _, first, end in plan for i in range(first, end)]
    assert kept == list(range(num_latents))
    for computed, first, _ in plan:
        assert computed == 0 if first == 0 else computed == max(0, first - 1 - context)


def test_edge_ramp_leaves_the_tile_border_to_the_neighbour():
    w = edge_ramp(12, 8, left=True, right=False)
    assert w[:2].eq(0).all() and (w[2:6].diff() > 0).all() and w[6:].eq(1).all()
    assert edge_ramp(5, 4, left=False, right=False).eq(1).all()


def test_tiled_spatial_is_exact_for_a_local_function():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 5, padding=2)  # reach 2 <= a quarter of the overlap (16)
    x = torch.randn(2, 3, 40, 53)
    with torch.no_grad():
        assert rel(tiled_spatial(conv, x, tile=24, overlap=16, scale=1), conv(x)) < 1e-6


def _fake_encoder(pixels):
    """Causal and local like the ST-VAE's resampling: 4x time (frame 0 alone), 8x space, 2x channels."""
    x = halve_time_keep_first(halve_time_keep_first(pixels))
    x = F.avg_pool3d(x, (1, 8, 8))
    return torch.cat([x, -x], dim=1)


def _fake_decoder(z):
    x = double_time_keep_first(double_time_keep_first(z))
    return x.repeat_interleave(8, dim=3).repeat_interleave(8, dim=4)


@settings(max_examples=15, deadline=None)
@given(k=st.integers(0, 6), chunk=st.integers(1, 3), context=st.integers(0, 2), h=st.integers(1, 5))
def test_tiled_encode_and_decode_put_every_frame_and_tile_in_its_place(k, chunk, context, h):
    config = TilingConfig(tile_size=16, tile_overlap=8, tile_latent_frames=chunk, context_latent_frames=context)
    pixels = torch.randn(1, 3, 1 + 4 * k, 8 * h, 24)
    moments = tiled_encode_moments(_fake_encoder, pixels, config, spatial_compression=8, temporal_compression=4)
    torch.testing.assert_close(moments, _fake_encoder(pixels))
    z = torch.randn(1, 4, 1 + k, h, 3)
    decoded = tiled_decode(_fake_decoder, z, config, spatial_compression=8, temporal_compression=4)
    torch.testing.assert_close(decoded, _fake_decoder(z))


def test_tiling_config_is_validated():
    with pytest.raises(ValueError, match="smaller than tile_size"):
        TilingConfig(tile_size=64, tile_overlap=64)
    vae = STVAE(STVAEConfig(block_out_channels=(8, 8, 8, 8), norm_num_groups=4, layers_per_block=1))
    with pytest.raises(ValueError, match="multiples of the spatial compression 8"):
        vae.enable_tiling(TilingConfig(tile_size=60, tile_overlap=16))


# -- the network ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae():
    model = STVAE(SMALL).eval()
    model.load_state_dict(load_file(DATA / "reference_vae_small.safetensors"))
    return model


def _tiled(vae, config, fn, *args):
    vae.enable_tiling(config)
    try:
        with torch.no_grad():
            return fn(*args)
    finally:
        vae.disable_tiling()


def test_one_tile_gives_exactly_the_untiled_result(vae):
    x = smooth_pixels((1, 3, 5, 32, 40), 8, seed=1)
    with torch.no_grad():
        mean, decoded = vae.posterior(x).mean, vae.decode_raw(vae.posterior(x).mean)
    config = TilingConfig(tile_size=64, tile_overlap=16, tile_latent_frames=2)
    torch.testing.assert_close(_tiled(vae, config, lambda: vae.posterior(x).mean), mean, rtol=0, atol=0)
    torch.testing.assert_close(_tiled(vae, config, vae.decode_raw, mean), decoded, rtol=0, atol=0)


def test_tiled_and_untiled_agree_and_agree_better_with_bigger_tiles(vae):
    """Random weights are the hard case: a tile sees only its part of the network's large
    receptive field (about 100 pixels each way here) and computes its own group-norm statistics,
    so the agreement is loose (about 0.2 relative at 96-pixel tiles on 128 pixels); it must
    improve as tiles grow. Trained networks, whose effective receptive field is smaller, agree
    more closely."""
    x = smooth_pixels((1, 3, 1, 128, 128), 32, seed=2)
    with torch.no_grad():
        mean = vae.posterior(x).mean
        decoded = vae.decode_raw(mean)
    errors = []
    for tile in (64, 96):
        config = TilingConfig(tile_size=tile, tile_overlap=32)
        errors.append((
            rel(_tiled(vae, config, lambda: vae.posterior(x).mean), mean),
            rel(_tiled(vae, config, vae.decode_raw, mean), decoded),
        ))
    (enc_small, dec_small), (enc_big, dec_big) = errors
    assert enc_big < enc_small and dec_big < dec_small
    assert enc_big < 0.25 and dec_big < 0.25, errors


def test_temporal_context_brings_chunked_clips_closer(vae):
    x = smooth_pixels((1, 3, 17, 16, 16), 4, seed=3)
    with torch.no_grad():
        mean = vae.posterior(x).mean
        decoded = vae.decode_raw(mean)
    errors = {}
    for context in (0, 3):
        config = TilingConfig(tile_size=64, tile_overlap=16, tile_latent_frames=2, context_latent_frames=context)
        errors[context] = (
            rel(_tiled(vae, config, lambda: vae.posterior(x).mean), mean),
            rel(_tiled(vae, config, vae.decode_raw, mean), decoded),
        )
    assert errors[3][0] < errors[0][0] and errors[3][1] < errors[0][1], errors
    assert errors[3][1] < 0.1, errors

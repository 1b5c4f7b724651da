"""ST-VAE: latent shapes, causal layers, the posterior, padding, errors and save/load."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lavin_core.errors import CheckpointError, UnknownNameError
from lavin_core.stvae import PRESETS, STVAE, DiagonalGaussian, STVAEConfig, get_preset
from lavin_core.stvae.layers import (
    CausalConv3d,
    Downsample,
    Upsample,
    double_time_keep_first,
    halve_time_keep_first,
    pad_time_causal,
)

# Smallest useful ST-VAE: four stages, 4x8x8 like the real one, tiny channels.
MINI = STVAEConfig(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                   latent_shift=0.1, latent_scale=1.5)
_MODELS: dict[str, STVAE] = {}


def mini_vae() -> STVAE:
    if "mini" not in _MODELS:
        torch.manual_seed(0)
        _MODELS["mini"] = STVAE(MINI).eval()
    return _MODELS["mini"]


def pixels(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# -- config ---------------------------------------------------------------------------------------


def test_presets_match_the_paper_and_train_on_a_cpu():
    official = PRESETS["lavin-3.4b"]
    assert official.block_out_channels == (128, 256, 256, 512) and official.layers_per_block == 3
    assert (official.latent_channels, official.temporal_compression, official.spatial_compression) == (16, 4, 8)
    assert (official.latent_shift, official.latent_scale) == (0.032470703125, 1.08936170213)
    tiny = get_preset("lavin-tiny")
    assert tiny.spatial_compression == 8 and tiny.temporal_compression == 4 and tiny.layers_per_block == 1
    with pytest.raises(UnknownNameError, match="lavin-tiny"):
        get_preset("lavin-tiney")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_out_channels": (30, 64)}, "divisible by norm_num_groups"),
        ({"temporal_compression": 3}, "power of two"),
        ({"block_out_channels": (32, 32), "temporal_compression": 4}, "power of two of at most 2"),
        ({"latent_channels": 0}, "latent_channels must be positive"),
        ({"block_out_channels": ()}, "one or more positive"),
    ],
)
def test_bad_configs_fail_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        STVAEConfig(**kwargs)


# -- shapes ---------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(k=st.integers(0, 2), h=st.integers(1, 4), w=st.integers(1, 4), batch=st.integers(1, 2))
def test_latent_and_decoded_shapes(k, h, w, batch):
    vae = mini_vae()
    x = pixels(batch, 3, 1 + 4 * k, 8 * h, 8 * w, seed=k + 10 * h + 100 * w)
    with torch.no_grad():
        z = vae.encode(x)
        assert tuple(z.shape) == vae.latent_shape(x.shape) == (batch, 16, 1 + k, h, w)
        y = vae.decode(z)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_bad_pixels_get_one_line_errors_naming_the_fix():
    vae = mini_vae()
    with pytest.raises(ValueError, match=r"1 \+ 4k frames, got 3; use 1 or 5 frames"):
        vae.encode(pixels(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8, got 12x16"):
        vae.encode(pixels(1, 3, 1, 12, 16))
    with pytest.raises(ValueError, match=r"5D tensor .* add a batch axis"):
        vae.encode(pixels(3, 1, 16, 16))
    with pytest.raises(ValueError, match="16 channels"):
        vae.decode(torch.randn(1, 8, 1, 2, 2))


def test_explicit_padding_is_undone_on_decode():
    vae = mini_vae()
    x = pixels(1, 3, 6, 13, 21, seed=3)
    with torch.no_grad():
        z = vae.encode(x, pad=True)
        assert z.shape == (1, 16, 3, 2, 3)  # padded to 9 frames, 16x24
        y = vae.decode(z, output_size=x.shape[2:])
    assert y.shape == x.shape
    with pytest.raises(ValueError, match="larger than the decoded"):
        vae.decode(z, output_size=(10, 13, 21))


def test_an_image_is_a_one_frame_clip_and_latents_are_normalized():
    vae = mini_vae()
    x = pixels(2, 3, 1, 16, 24, seed=4)
    with torch.no_grad():
        posterior = vae.posterior(x)
        z = vae.encode(x)
        torch.testing.assert_close(z, (posterior.mean - 0.1) * 1.5)
        torch.testing.assert_close(vae.denormalize(z), posterior.mean)
        torch.testing.assert_close(vae.decode(z), vae.decode_raw(posterior.mean).clamp(-1, 1))


# -- posterior ------------------------------------------------------------------------------------


def test_posterior_clamps_logvar_and_its_kl_matches_the_closed_form():
    mean, logvar = torch.randn(2, 4, 1, 3, 3), torch.randn(2, 4, 1, 3, 3) * 50
    posterior = DiagonalGaussian.from_moments(torch.cat([mean, logvar], dim=1))
    assert posterior.logvar.min() >= -30 and posterior.logvar.max() <= 20
    lv = logvar.clamp(-30, 20)
    expected = 0.5 * (mean**2 + lv.exp() - 1 - lv).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(posterior.kl(), expected)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, (0.5 * lv).exp()), torch.distributions.Normal(0.0, 1.0)
    ).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(posterior.kl(), ref, rtol=1e-4, atol=1e-3)


def test_sampling_uses_the_generator_and_the_mean_by_default():
    vae = mini_vae()
    x = pixels(1, 3, 5, 16, 16, seed=5)
    with torch.no_grad():
        mean = vae.encode(x)
        a = vae.encode(x, generator=torch.Generator().manual_seed(1))
        b = vae.encode(x, generator=torch.Generator().manual_seed(1))
        c = vae.encode(x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, mean)
    torch.testing.assert_close(vae.encode(x), mean)


# -- causality ------------------------------------------------------------------------------------


def test_time_resampling_keeps_the_first_frame_alone():
    x = torch.randn(2, 3, 9, 4, 4)
    y = halve_time_keep_first(x)
    assert y.shape[2] == 5
    torch.testing.assert_close(y[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(y[:, :, 3], (x[:, :, 5] + x[:, :, 6]) / 2)
    assert halve_time_keep_first(x[:, :, :1]).shape[2] == 1
    up = double_time_keep_first(y)
    assert up.shape[2] == 9
    torch.testing.assert_close(up[:, :, 5], y[:, :, 3])
    torch.testing.assert_close(up[:, :, 6], y[:, :, 3])
    padded = pad_time_causal(x, 2)
    torch.testing.assert_close(padded[:, :, :3], x[:, :, :1].expand(-1, -1, 3, -1, -1))


@pytest.mark.parametrize("layer", ["conv", "down", "up"])
def test_causal_layers_do_not_look_at_future_frames(layer):
    torch.manual_seed(0)
    module = {"conv": CausalConv3d(4, 6), "down": Downsample(4, compress_time=True),
              "up": Upsample(4, compress_time=True)}[layer]
    frames_per_step = {"conv": (1, 1), "down": (2, 1), "up": (1, 2)}[layer]  # (input, output) per step
    x = torch.randn(1, 4, 9, 8, 8)
    for k in range(1, 9):
        changed = x.clone()
        changed[:, :, k:] = torch.randn_like(changed[:, :, k:])
        with torch.no_grad():
            a, b = module(x), module(changed)
        # Output frames built only from input frames < k.
        step_in, step_out = frames_per_step
        safe = 1 + (k - 1) // step_in * step_out if layer != "conv" else k
        torch.testing.assert_close(a[:, :, :safe], b[:, :, :safe], rtol=0, atol=1e-6)
        assert not torch.allclose(a, b)


class _PerFrameGroupNorm(nn.Module):
    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return nn.functional.group_norm(
            x.transpose(1, 2).flatten(0, 1), self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps
        ).unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)


def test_the_network_structure_is_causal():
    """With statistics computed per frame, earlier latents and frames ignore later frames.

    The official network's group norms pool statistics over all frames of a clip (as in
    CogVideoX), which is the only path by which later frames reach earlier outputs; this test
    swaps in per-frame group norms to check that every convolution and resampling is causal.
    """
    torch.manual_seed(0)
    vae = STVAE(MINI).eval()
    for module in list(vae.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(module, child_name, _PerFrameGroupNorm(child))
    x = pixels(1, 3, 9, 16, 16, seed=6)
    changed = x.clone()
    changed[:, :, 5:] = pixels(1, 3, 4, 16, 16, seed=7)  # frames 5..8 = latent frame 2
    with torch.no_grad():
        za, zb = vae.encode(x), vae.encode(changed)
        torch.testing.assert_close(za[:, :, :2], zb[:, :, :2], rtol=0, atol=1e-5)
        assert not torch.allclose(za[:, :, 2], zb[:, :, 2])
        zc = za.clone()
        zc[:, :, 2] = torch.randn_like(zc[:, :, 2])
        ya, yc = vae.decode(za), vae.decode(zc)
        torch.testing.assert_close(ya[:, :, :5], yc[:, :, :5], rtol=0, atol=1e-5)
        assert not torch.allclose(ya[:, :, 5:], yc[:, :, 5:])


def test_one_frame_fast_path_equals_the_padded_3d_convolution():
    torch.manual_seed(0)
    conv = CausalConv3d(5, 7)
    x = torch.randn(2, 5, 1, 9, 11)
    reference = conv.conv(pad_time_causal(x, 2))
    assert rel(conv(x), reference) < 1e-6


# -- save / load ----------------------------------------------------------------------------------


def test_save_pretrained_round_trip(tmp_path):
    vae = mini_vae()
    vae.save_pretrained(str(tmp_path / "vae"))
    loaded = STVAE.from_pretrained(str(tmp_path / "vae"))
    assert loaded.config == MINI
    x = pixels(1, 3, 5, 16, 16, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), vae.encode(x))
    (tmp_path / "vae" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError):
        STVAE.from_pretrained(str(tmp_path / "vae"))


def test_parameter_names_follow_the_official_checkpoint():
    names = set(STVAE(PRESETS["lavin-tiny"]).state_dict())
    assert "encoder.down_blocks.0.downsamplers.0.conv.weight" in names
    assert "decoder.up_blocks.0.resnets.1.norm1.conv_y.conv.weight" in names
    assert "decoder.norm_out.norm_layer.weight" in names
    assert not any("down_blocks.3.downsamplers" in n or "up_blocks.3.upsamplers" in n for n in names)

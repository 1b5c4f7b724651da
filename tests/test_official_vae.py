"""The authors' ST-VAE weights: loading stvae.pt / safetensors strictly and reproducing their outputs.

``tests/data/reference_vae_small*.safetensors`` were made by the authors' model code
(``AutoencoderKLSTVAE(block_out_channels=(32, 64, 64, 64), layers_per_block=2)``) on random
weights; see ``/work/shared/official/reference/README.md``. ``tests/data/stvae_state_dict.tsv``
lists every tensor of the released ``stvae.pt``.
"""

import os
from pathlib import Path

import pytest
import safetensors.torch
import torch

from lavin_core.errors import CheckpointError
from lavin_core.official import load_vae
from lavin_core.stvae import PRESETS, STVAE, STVAEConfig

DATA = Path(__file__).parent / "data"
WEIGHTS = DATA / "reference_vae_small.safetensors"
IO = DATA / "reference_vae_small_io.safetensors"
LISTING = DATA / "stvae_state_dict.tsv"
SMALL = STVAEConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=2, norm_num_groups=32)

def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def random_state_dict(config, seed=0):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in STVAE(config).state_dict().items()}


def test_reference_outputs_are_reproduced_to_1e5():
    vae = load_vae(str(WEIGHTS), SMALL)
    io = safetensors.torch.load_file(str(IO))
    with torch.no_grad():
        video = vae.posterior(io["video"])
        assert rel(video.mean, io["mean_video"]) < 1e-5
        assert rel(video.logvar, io["logvar_video"]) < 1e-5
        image = vae.posterior(io["image"])
        assert rel(image.mean, io["mean_image"]) < 1e-5
        assert rel(vae.decode_raw(io["mean_video"]), io["decoded_video"]) < 1e-5
        assert rel(vae.decode_raw(io["mean_image"]), io["decoded_image"]) < 1e-5
        # The public API: normalized latents of the same means.
        torch.testing.assert_close(vae.encode(io["image"]), (image.mean - SMALL.latent_shift) * SMALL.latent_scale)


def test_the_torch_file_with_a_state_dict_key_loads_like_the_safetensors(tmp_path):
    tensors = safetensors.torch.load_file(str(WEIGHTS))
    path = tmp_path / "stvae.pt"
    torch.save({"state_dict": tensors, "epoch": 7, "note": "extra plain entries are fine"}, path)
    a, b = load_vae(str(path), SMALL), load_vae(str(WEIGHTS), SMALL)
    assert not a.training
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_the_official_preset_has_exactly_the_released_tensor_names_and_shapes():
    listed = {}
    for line in LISTING.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            listed[name] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    with torch.device("meta"):
        vae = STVAE(PRESETS["lavin-3.4b"])
    ours = {name: tuple(t.shape) for name, t in vae.state_dict().items()}
    assert ours == listed


def test_default_config_is_the_official_preset(tmp_path):
    # A file with the wrong (tiny) tensors must fail against the default official architecture.
    path = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file(random_state_dict(PRESETS["lavin-tiny"]), str(path))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_vae(str(path))
    assert isinstance(load_vae(str(path), PRESETS["lavin-tiny"]), STVAE)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop", "missing 1: decoder.conv_out.conv.bias"),
        ("extra", "unexpected 1: encoder.quant_conv.weight"),
        ("shape", r"wrong shape 1: encoder.conv_in.conv.weight \(checkpoint \(32, 3, 3, 3\), model"),
    ],
)
def test_a_broken_checkpoint_fails_naming_the_tensor(tmp_path, suffix, damage, message):
    config = PRESETS["lavin-tiny"]
    tensors = random_state_dict(config)
    if damage == "drop":
        del tensors["decoder.conv_out.conv.bias"]
    elif damage == "extra":
        tensors["encoder.quant_conv.weight"] = torch.randn(2, 2)
    else:
        tensors["encoder.conv_in.conv.weight"] = torch.randn(32, 3, 3, 3)
    path = tmp_path / f"broken{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": tensors}, path)
    else:
        safetensors.torch.save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=message):
        load_vae(str(path), config)


class _Payload:
    """Unpickling this would run code; a weights-only load must refuse it."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    tensors = random_state_dict(PRESETS["lavin-tiny"])
    torch.save({"state_dict": tensors, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refused, nothing in it was run: it is a pickle with objects other than tensors, possibly code \(.*getcwd"):
        load_vae(str(path), PRESETS["lavin-tiny"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"state_dict": {"a": 1}}, "entries that are not tensors: a"),
        ([torch.zeros(1)], "holds list, not a state dict"),
    ],
)
def test_torch_files_without_a_tensor_state_dict_are_rejected(tmp_path, content, message):
    path = tmp_path / "odd.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_vae(str(path), PRESETS["lavin-tiny"])


def test_missing_and_corrupt_files_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_vae(str(tmp_path / "absent.pt"))
    (tmp_path / "junk.pt").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_vae(str(tmp_path / "junk.pt"))

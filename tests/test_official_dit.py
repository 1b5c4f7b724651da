"""The authors' J-DiT weights: reproduce their network's output; broken checkpoints name the tensor.

``tests/data/reference_dit_small*.safetensors`` were made by the authors' model code
(``LaVinDiT(hidden_size=96, depth=2, num_heads=4, kv_group=4)``) on random weights; see
``/work/shared/official/reference/README.md``. Their tensors are named exactly as in the released
``lavin_dit.safetensors``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
import torch
from safetensors.torch import load_file, save_file

from lavin_core.errors import CheckpointError
from lavin_core.jdit import JDiT, JDiTConfig
from lavin_core.official import load_dit

DATA = Path(__file__).parent / "data"
WEIGHTS = DATA / "reference_dit_small.safetensors"
CONFIG = JDiTConfig(hidden_size=96, depth=2, num_heads=4, num_kv_heads=1)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(DATA / "reference_dit_small_io.safetensors")


def test_reproduces_the_official_network(io):
    model = load_dit(str(WEIGHTS), CONFIG)
    assert model.config.time_convention == "official" and not model.training
    with torch.no_grad():
        v = model(io["x"], 1 - io["t_official"], io["cond"])
    assert rel(v, -io["v_official"]) < 1e-5


def test_batched_and_scalar_time_match_the_reference(io):
    model = load_dit(str(WEIGHTS), CONFIG)
    x, cond = io["x"].expand(2, -1, -1, -1, -1), io["cond"].expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        v = model(x, 1 - io["t_official"][0], cond)
    for row in v:
        assert rel(row[None], -io["v_official"]) < 1e-5


def test_loads_from_an_fsspec_url(io):
    url = f"memory://official-{uuid.uuid4().hex}/lavin_dit.safetensors"
    with fsspec.open(url, "wb") as f:
        f.write(WEIGHTS.read_bytes())
    model = load_dit(url, CONFIG, dtype=torch.float64)
    assert model.blocks[0].joint_attn.x_q.weight.dtype == torch.float64
    with torch.no_grad():
        v = model(io["x"].double(), 1 - io["t_official"].double(), io["cond"].double())
    assert rel(v, -io["v_official"].double()) < 1e-5


def _broken(tmp_path: Path, edit) -> str:
    tensors = load_file(WEIGHTS)
    edit(tensors)
    path = tmp_path / "broken.safetensors"
    save_file(tensors, path)
    return str(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda sd: sd.pop("blocks.1.joint_attn.x_knorm.weight"), r"missing 1: blocks\.1\.joint_attn\.x_knorm\.weight"),
        (lambda sd: sd.update({"blocks.2.x_mlp.up_proj.weight": torch.randn(256, 96)}), r"unexpected 1: blocks\.2\.x_mlp"),
        (
            lambda sd: sd.update({"final_layer.linear.weight": torch.randn(32, 96)}),
            r"wrong shape 1: final_layer\.linear\.weight \(checkpoint \(32, 96\), model \(64, 96\)\)",
        ),
    ],
)
def test_broken_checkpoint_names_the_tensor(tmp_path, edit, match):
    with pytest.raises(CheckpointError, match=match):
        load_dit(_broken(tmp_path, edit), CONFIG)


def test_wrong_config_names_every_mismatch():
    with pytest.raises(CheckpointError) as info:
        load_dit(str(WEIGHTS))  # the 3.4B preset: every shape differs and 20 blocks (22 tensors each) are missing
    message = str(info.value)
    assert "missing 440: blocks.10.cond_mlp.down_proj.weight" in message and "\n" not in message
    assert "prompt_embed (checkpoint (1, 96), model (1, 2304))" in info.value.mis_shaped  # the full list


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no safetensors file at"):
        load_dit(str(tmp_path / "lavin_dit.safetensors"), CONFIG)


def test_loaded_official_model_round_trips_through_save_pretrained(io, tmp_path):
    model = load_dit(str(WEIGHTS), CONFIG)
    model.save_pretrained(str(tmp_path / "ours"))
    again = JDiT.from_pretrained(str(tmp_path / "ours"))
    assert again.config.time_convention == "official"
    saved, loaded = model.state_dict(), again.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    # Outputs agree to float rounding, not bit for bit: MKL's matmul result depends on how the
    # weights happen to be aligned in memory (memory-mapped safetensors vs fresh allocations).
    with torch.no_grad():
        assert rel(again(io["x"], io["t_official"], io["cond"]), model(io["x"], io["t_official"], io["cond"])) < 1e-6

"""Generic checkpoint helpers: strict loading names every problem; save/load round trips exactly."""

from __future__ import annotations

import json
import uuid

import attrs
import fsspec
import pytest
import torch
from torch import nn

from lavin_core.checkpoint import (
    PretrainedMixin,
    config_from_dict,
    config_to_dict,
    load_state_dict_strict,
    read_safetensors,
    save_pretrained,
)
from lavin_core.errors import CheckpointError


@attrs.frozen(kw_only=True)
class ToyConfig:
    width: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    depth: int = 2
    kernel: tuple[int, int] = (3, 3)


class Toy(PretrainedMixin, nn.Module):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(nn.Linear(config.width, config.width) for _ in range(config.depth))
        self.register_buffer("scale", torch.randn(config.width))


class Other(Toy):
    pass


def _toy(**kw) -> Toy:
    torch.manual_seed(0)
    return Toy(ToyConfig(**kw))


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_config_round_trip_turns_lists_back_into_tuples():
    cfg = ToyConfig(width=4, kernel=(1, 5))
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(ToyConfig, data) == cfg


def test_config_unknown_key_is_named():
    with pytest.raises(CheckpointError, match="unknown ToyConfig field.*colour"):
        config_from_dict(ToyConfig, {"width": 4, "colour": "red"})


def test_config_invalid_value_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="invalid ToyConfig"):
        config_from_dict(ToyConfig, {"width": -1})


@pytest.mark.parametrize("where", ["local", "memory", "file"])
def test_save_load_round_trip_is_exact(where, tmp_path):
    url = {
        "local": str(tmp_path / "ckpt"),
        "memory": f"memory://lavin-test-{uuid.uuid4().hex}/ckpt",
        "file": f"file://{tmp_path}/ckpt",
    }[where]
    model = _toy(width=6, depth=3, kernel=(1, 2))
    model.save_pretrained(url)
    loaded = Toy.from_pretrained(url)
    assert loaded.config == model.config
    _assert_same(model, loaded)
    assert not any(p.is_meta for p in loaded.parameters())


def test_from_pretrained_casts_dtype(tmp_path):
    model = _toy()
    model.save_pretrained(str(tmp_path))
    loaded = Toy.from_pretrained(str(tmp_path), dtype=torch.bfloat16)
    assert loaded.layers[0].weight.dtype == torch.bfloat16


def test_wrong_class_is_named(tmp_path):
    _toy().save_pretrained(str(tmp_path))
    with pytest.raises(CheckpointError, match="holds a Toy checkpoint, not a Other"):
        Other.from_pretrained(str(tmp_path))


def test_missing_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        Toy.from_pretrained(str(tmp_path / "nowhere"))


def test_corrupt_weights_are_a_checkpoint_error():
    url = f"memory://lavin-test-{uuid.uuid4().hex}"
    save_pretrained(_toy(), ToyConfig(), url)
    with fsspec.open(f"{url}/model.safetensors", "wb") as f:
        f.write(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        Toy.from_pretrained(url)


def test_strict_load_names_every_problem():
    model = _toy(width=4, depth=2)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    del sd["layers.0.bias"]
    sd["layers.9.weight"] = torch.randn(4, 4)
    sd["layers.1.weight"] = torch.randn(4, 5)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(_toy(width=4, depth=2), sd, source="toy.safetensors")
    message = str(info.value)
    assert "toy.safetensors" in message
    assert "missing 1: layers.0.bias" in message
    assert "unexpected 1: layers.9.weight" in message
    assert "layers.1.weight (checkpoint (4, 5), model (4, 4))" in message


def test_strict_load_into_meta_module_assigns_and_casts():
    source = _toy(width=4)
    sd = {k: v.double() for k, v in source.state_dict().items()}
    with torch.device("meta"):
        target = Toy(ToyConfig(width=4))
    load_state_dict_strict(target, sd, source="mem", assign=True)
    assert target.layers[0].weight.dtype == torch.float32
    _assert_same(source, target)


def test_read_safetensors_memory_url():
    url = f"memory://lavin-test-{uuid.uuid4().hex}"
    model = _toy()
    save_pretrained(model, model.config, url)
    tensors = read_safetensors(f"{url}/model.safetensors")
    assert torch.equal(tensors["scale"], model.scale)

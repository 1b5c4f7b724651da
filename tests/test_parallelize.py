"""The parallelize step (fixed order, names kept), materializing a meta model, async DCP checkpoints,
and the training-memory arithmetic checked against a real forward."""

from __future__ import annotations

import copy

import pytest
import torch

from lavin_core.jdit import JDiT, get_preset
from lavin_core.train.checkpointing import CheckpointManager, latest_checkpoint, read_model_weights
from lavin_core.train.distributed import DistInfo
from lavin_core.train.memory import saved_activation_bytes, training_memory
from lavin_core.train.parallelize import ORDER, materialize, parallelize, plan

CONFIG = get_preset("lavin-tiny", depth=2)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 1, 4, 4, generator=g), torch.rand(2, generator=g), torch.randn(2, 16, 3, 4, 4, generator=g)


def test_the_plan_follows_the_fixed_order():
    assert plan(parallel="fsdp", activation_checkpointing=True, compile=True) == ("activation_checkpointing",
                                                                                 "compile", "fsdp")
    assert plan(parallel="ddp", activation_checkpointing=True, compile=False) == ("activation_checkpointing", "ddp")
    assert plan(parallel="none", activation_checkpointing=False, compile=False) == ()
    assert ORDER.index("compile") < ORDER.index("fsdp")
    with pytest.raises(Exception, match="unknown parallel mode 'tp'"):
        plan(parallel="tp", activation_checkpointing=False, compile=False)


def test_a_meta_model_materializes_to_the_weights_of_one_built_whole():
    torch.manual_seed(5)
    whole = JDiT(CONFIG)
    torch.manual_seed(5)
    with torch.device("meta"):
        meta = JDiT(CONFIG)
    rules = copy.deepcopy(meta)
    parallelize(meta, ("activation_checkpointing",), DistInfo())  # names must survive the wrapper
    materialize(meta, torch.device("cpu"), rules.init_parameter)
    assert whole.state_dict().keys() == meta.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), meta.state_dict().values()))


def test_activation_checkpointing_from_outside_keeps_the_gradients():
    torch.manual_seed(0)
    plain = JDiT(CONFIG).train()
    wrapped = copy.deepcopy(plain)
    parallelize(wrapped, ("activation_checkpointing",), DistInfo())
    assert "CheckpointWrapper" in type(wrapped.blocks[0]).__name__
    for model in (plain, wrapped):
        model(*_inputs()).square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), wrapped.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        assert a.grad is None or torch.equal(a.grad, b.grad), name


def test_async_checkpoints_appear_only_when_committed(tmp_path):
    torch.manual_seed(0)
    model = JDiT(CONFIG)
    opt = torch.optim.AdamW(model.parameters())
    manager = CheckpointManager(tmp_path, keep_last=2, info=DistInfo(), models={"model": model},
                                optimizers={"optimizer": (model, opt)}, async_save=True)
    final = manager.save(1, trainer_state={"step": 1}, rank_state={}, meta={})
    assert not final.exists()  # committed (renamed into place) only once the writer is done
    manager.close()
    assert latest_checkpoint(tmp_path) == final
    saved = read_model_weights(final)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_the_memory_estimate_matches_a_real_forward():
    torch.manual_seed(0)
    model = JDiT(CONFIG).train()
    z_t, t, cond = _inputs()
    real = saved_activation_bytes(model, z_t[:1], t[:1], cond[:1])
    estimate = training_memory(CONFIG, cond_frames=3, latent_size=4, activation_checkpointing=False)
    assert abs(estimate.activations - real) / real < 0.02
    checkpointed = training_memory(CONFIG, cond_frames=3, latent_size=4, activation_checkpointing=True)
    assert checkpointed.activations < estimate.activations
    params = sum(p.numel() for p in model.parameters())
    assert estimate.parameters == params and estimate.states == 20 * params  # fp32 weights, grads, 2 moments, EMA
    halves = training_memory(CONFIG, cond_frames=3, latent_size=4, activation_checkpointing=False, world_size=2)
    assert halves.states == 20 * -(-params // 2)

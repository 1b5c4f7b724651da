"""Training checkpoints with small stand-in modules: atomic, keep-last-K, exact restore, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lavin_core.errors import CheckpointError
from lavin_core.jdit import JDiT, get_preset
from lavin_core.train.checkpointing import (
    TEMP_PREFIX,
    CheckpointManager,
    export_pretrained,
    latest_checkpoint,
    list_checkpoints,
    rng_state,
    set_rng_state,
)
from lavin_core.train.distributed import DistInfo
from lavin_core.train.ema import EMA, ema_decay_at
from lavin_core.train.metrics import MetricsLogger, read_metrics

INFO = DistInfo()


class Net(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(2))
        self.head = nn.Linear(width, 3)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        for block in self.blocks:
            x = torch.tanh(block(x))
        return self.head(x)


def trained(steps: int, seed: int = 0) -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(4, 8)).square().mean().backward()
        opt.step()
    return net, opt


def manager(run_dir, net, opt, keep_last=2, ema=None):
    models = {"model": net, **({"ema": ema.shadow} if ema else {})}
    return CheckpointManager(run_dir, keep_last=keep_last, info=INFO, models=models,
                             optimizers={"optimizer": (net, opt)})


def save(mgr, step):
    return mgr.save(step, trainer_state={"step": step}, rank_state={"data_step": step}, meta={"model": {"preset": "x"}})


def test_keep_last_k_and_latest(tmp_path):
    net, opt = trained(1)
    mgr = manager(tmp_path, net, opt, keep_last=2)
    for step in (1, 2, 3):
        save(mgr, step)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    assert not list((tmp_path / "checkpoints").glob(f"{TEMP_PREFIX}*"))


def test_a_torn_write_is_ignored_and_cleaned(tmp_path):
    net, opt = trained(1)
    save(manager(tmp_path, net, opt), 5)
    torn = tmp_path / "checkpoints" / f"{TEMP_PREFIX}00000009"  # a writer killed mid-way
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path).name == "step-00000005"
    manager(tmp_path, net, opt)  # the next start removes it
    assert not torn.exists()


def test_restore_is_exact_and_training_continues_identically(tmp_path):
    net, opt = trained(3)
    ema = EMA(net, 0.9)
    ema.update(net)
    mgr = manager(tmp_path, net, opt, ema=ema)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    path = save(mgr, 3)
    expected_rng = (random.random(), float(np.random.rand()), torch.rand(3))

    fresh, fresh_opt = trained(0, seed=123)
    fresh_ema = EMA(fresh, 0.9)
    trainer_state, rank_state = manager(tmp_path, fresh, fresh_opt, ema=fresh_ema).load(path)
    assert trainer_state == {"step": 3} and rank_state == {"data_step": 3}
    assert (random.random(), float(np.random.rand())) == expected_rng[:2]
    assert torch.equal(torch.rand(3), expected_rng[2])
    for a, b in zip([*net.state_dict().values(), *ema.shadow.state_dict().values()],
                    [*fresh.state_dict().values(), *fresh_ema.shadow.state_dict().values()]):
        assert torch.equal(a, b)
    # One more identical step on both gives identical weights: the optimizer state came back too.
    x = torch.randn(4, 8)
    for model, optimizer in ((net, opt), (fresh, fresh_opt)):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), fresh.parameters()))


def test_another_shape_fails_naming_the_tensors(tmp_path):
    net, opt = trained(1)
    path = save(manager(tmp_path, net, opt), 1)
    wide = Net(width=16)
    wide_opt = torch.optim.AdamW(wide.parameters())
    with pytest.raises(CheckpointError, match=r"cannot resume from .*preset.*wrong shape .*blocks\.0\.weight"):
        manager(tmp_path, wide, wide_opt).load(path)


def test_rng_state_round_trips():
    state = rng_state(torch.device("cpu"))
    draws = (random.random(), float(np.random.rand()), torch.rand(2))
    set_rng_state(state, torch.device("cpu"))
    assert (random.random(), float(np.random.rand())) == draws[:2]
    assert torch.equal(torch.rand(2), draws[2])


def test_export_loads_with_from_pretrained(tmp_path):
    config = get_preset("lavin-tiny", depth=1)
    torch.manual_seed(0)
    model = JDiT(config)
    export_pretrained(JDiT, config, model.state_dict(), str(tmp_path / "export"))
    loaded = JDiT.from_pretrained(str(tmp_path / "export"))
    assert loaded.config == config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(CheckpointError, match="does not fit JDiT"):
        export_pretrained(JDiT, get_preset("lavin-tiny", depth=2), model.state_dict(), str(tmp_path / "bad"))


@settings(max_examples=25, deadline=None)
@given(decay=st.floats(0.0, 0.9999), updates=st.integers(0, 10**6))
def test_ema_decay_warms_up_to_the_configured_value(decay, updates):
    value = ema_decay_at(decay, updates)
    assert 0.0 <= value <= decay
    assert value == min(decay, (1 + updates) / (10 + updates))


def test_ema_update_is_the_moving_average():
    torch.manual_seed(0)
    net = Net()
    ema = EMA(net, 0.5)
    start = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    ema.update(net)  # first update: decay min(0.5, 1 / 10) = 0.1
    for average, old, new in zip(ema.shadow.parameters(), start, net.parameters()):
        torch.testing.assert_close(average, 0.1 * old + 0.9 * new)
    assert not any(p.requires_grad for p in ema.shadow.parameters())


def test_metrics_drop_lines_past_the_resumed_step(tmp_path):
    logger = MetricsLogger(tmp_path, total_steps=10)
    for step in (2, 4, 6):
        logger.log(step, {"loss": 1.0 / step}, samples=8)
    logger.close()
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 8, "lo')  # torn by a crash
    logger = MetricsLogger(tmp_path, total_steps=10, start_step=4)
    logger.log(6, {"loss": 0.5}, samples=8)
    logger.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 6] and records[-1]["loss"] == 0.5
    assert records[0]["samples_per_s"] > 0

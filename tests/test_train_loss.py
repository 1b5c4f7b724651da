"""A few hundred CPU steps of the tiny J-DiT on one task cut the flow-matching loss clearly."""

from __future__ import annotations

import pytest

from lavin_core.train.config import load_config
from lavin_core.train.metrics import read_metrics
from lavin_core.train.plot import plot_loss
from lavin_core.train.toy import make_toy_workspace
from lavin_core.train.trainer import train


@pytest.mark.slow
def test_tiny_jdit_learns_the_toy_task(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    config = load_config(config_path, ["run.steps=200", "run.log_every=10", "checkpoint.every=200",
                                       "data.min_pairs=1", "data.max_pairs=1", "train.batch_size=8",
                                       "schedule.warmup_steps=10"])
    train(config, tmp_path / "run")
    losses = [record["loss"] for record in read_metrics(tmp_path / "run")]
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, losses
    assert plot_loss(tmp_path / "run").stat().st_size > 0

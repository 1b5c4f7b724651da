"""A run killed with SIGKILL mid-way and resumed ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from lavin_core.errors import CheckpointError
from lavin_core.stvae import STVAE
from lavin_core.train.checkpointing import list_checkpoints, read_model_weights
from lavin_core.train.config import load_config
from lavin_core.train.metrics import read_metrics
from lavin_core.train.toy import make_toy_workspace
from lavin_core.train.trainer import TrainingError, train

STEPS = 12
OVERRIDES = [f"run.steps={STEPS}", "checkpoint.every=3", "checkpoint.keep_last=2", "train.batch_size=2",
             "data.max_pairs=2", "train.ema_decay=0.9"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    config = load_config(config_path, OVERRIDES)
    train(config, tmp_path / "straight")

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "lavin_core.train", str(config_path), "--out", str(killed)]
    for override in OVERRIDES:
        command += ["--set", override]
    # The same thread count as this process: float reductions, and so the weights, depend on it.
    threads = str(torch.get_num_threads())
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": threads},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = list_checkpoints(killed)
    assert saved and int(saved[-1].name.split("-")[1]) < STEPS, "the run must be killed before its end"

    with pytest.raises(TrainingError, match="--resume"):
        train(config, killed)
    train(config, killed, resume=True)
    final = f"checkpoints/step-{STEPS:08d}"
    for name in ("model", "ema"):
        a = read_model_weights(tmp_path / "straight" / final, name)
        b = read_model_weights(killed / final, name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert len(list_checkpoints(killed)) == 2  # keep_last


def test_resume_with_another_model_shape_names_the_tensors(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    run = tmp_path / "run"
    train(load_config(config_path, ["run.steps=1", "checkpoint.every=1", "data.max_pairs=1"]), run)
    small = load_config(config_path, ["run.steps=2", "data.max_pairs=1", 'model.preset="lavin-small"'])
    with pytest.raises(CheckpointError, match=r"cannot resume from .*step-00000001.*wrong shape"):
        train(small, run, resume=True)


@pytest.mark.reliability  # issue 19: a NaN loss stops training
def test_a_non_finite_loss_stops_the_run_naming_step_and_checkpoint(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    # An absurd learning rate blows the weights up after the first step.
    config = load_config(config_path, ["optimizer.lr=1e30", "train.grad_clip=0.0", "checkpoint.every=1",
                                       "run.steps=4", "data.max_pairs=1"])
    expected = r"loss is (nan|inf) at step 1; the last good checkpoint is .*step-00000001"
    with pytest.raises(TrainingError, match=expected):
        train(config, tmp_path / "run")


@pytest.mark.slow
def test_vae_stage_resumes_exactly_with_its_discriminator(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    # Image stage for one step, then the joint stage; the discriminator joins at step 1. Float32:
    # this checks the resume of the discriminator and its optimizer, bit for bit; under bf16
    # autocast one CI run (another AVX-512 BF16 machine) read a NaN loss on the resumed step,
    # not reproduced in 16 runs on this one (the dit-stage SIGKILL test covers resuming under bf16).
    config = load_config(config_path, ['run.stage="vae"', "run.steps=3", "run.log_every=1", "checkpoint.every=2",
                                       "train.batch_size=2", "vae.image_steps=1", "vae.adversarial_start_step=1",
                                       "train.precision='fp32'"])
    train(config, tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-00000003")
    train(config, tmp_path / "resumed", resume=True)
    final = "checkpoints/step-00000003"
    for name in ("model", "ema", "discriminator"):
        a = read_model_weights(tmp_path / "straight" / final, name)
        b = read_model_weights(tmp_path / "resumed" / final, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    records = read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in records] == [1, 2, 3]  # no duplicated lines after the resume
    assert "loss_discriminator" in records[-1] and "loss_perceptual" in records[-1]
    assert STVAE.from_pretrained(str(tmp_path / "resumed" / "export")).config == STVAE.from_preset("lavin-tiny").config

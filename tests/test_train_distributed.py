"""A tiny J-DiT trained under torchrun (2 ranks, gloo) equals one process with the same global batch;
an FSDP2 run resumed from its checkpoint continues exactly; gradient checkpointing and bf16 autocast
keep the numbers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from lavin_core.jdit import JDiT, get_preset
from lavin_core.train.checkpointing import read_model_weights
from lavin_core.train.config import load_config
from lavin_core.train.metrics import read_metrics
from lavin_core.train.toy import make_toy_workspace
from lavin_core.train.trainer import seed_everything, train

STEPS = 3
# float32 everywhere: the comparisons across world sizes are at float32 tolerance, and "auto"
# would train in bf16 on a CPU with native bf16 (devices.native_bf16).
OVERRIDES = [f"run.steps={STEPS}", "checkpoint.every=2", "train.batch_size=4", "train.ema_decay=0.5",
             "train.precision='fp32'"]


def _weights(run_dir, name="model"):
    return read_model_weights(run_dir / "checkpoints" / f"step-{STEPS:08d}", name)


def _relative(a: dict, b: dict, reference: dict) -> float:
    num = sum((a[k].double() - b[k].double()).square().sum() for k in reference)
    den = sum(reference[k].double().square().sum() for k in reference)
    return float((num / den).sqrt())


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    config_path = folder / "config.toml"
    config_path.write_text(make_toy_workspace(folder))
    train(load_config(config_path, OVERRIDES), folder / "single")
    seed_everything(0)
    initial = JDiT(get_preset("lavin-tiny")).state_dict()
    return folder, config_path, initial


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(single_run, parallel):
    folder, config_path, initial = single_run
    out = folder / parallel
    _torchrun(config_path, out, parallel)
    single, multi = _weights(folder / "single"), _weights(out)
    update = {k: single[k] - initial[k] for k in single}
    assert float(sum(u.double().square().sum() for u in update.values()).sqrt()) > 0.1  # training moved the weights
    assert _relative(multi, single, single) < 1e-5
    # The updates too, which is stricter (the weights barely move in 3 steps); AdamW divides each
    # gradient by its own scale, so the summation-order noise of near-zero gradients shows at ~1e-5.
    assert _relative({k: multi[k] - initial[k] for k in multi}, update, update) < 1e-4
    single_ema = _weights(folder / "single", "ema")
    assert _relative(_weights(out, "ema"), single_ema, single_ema) < 1e-5
    exported = JDiT.from_pretrained(str(out / "export"))
    assert exported.config == get_preset("lavin-tiny")

    if parallel == "fsdp":  # sharded weights and optimizer state come back exactly on resume
        resumed = folder / "fsdp-resumed"
        shutil.copytree(out, resumed)
        shutil.rmtree(resumed / "checkpoints" / f"step-{STEPS:08d}")
        _torchrun(config_path, resumed, parallel, "--resume")
        for name in ("model", "ema"):
            a, b = _weights(out, name), _weights(resumed, name)
            assert all(torch.equal(a[k], b[k]) for k in a), name
        # The sharded DCP checkpoint of 2 ranks resumes in one process (another world size).
        alone = folder / "fsdp-resumed-alone"
        shutil.copytree(resumed, alone)
        shutil.rmtree(alone / "checkpoints" / f"step-{STEPS:08d}")
        train(load_config(config_path, OVERRIDES), alone, resume=True)
        assert _relative(_weights(alone), _weights(out), _weights(out)) < 1e-6


def _torchrun(config_path, out, parallel, *extra):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lavin_core.train", str(config_path), "--out", str(out), "--set", f'model.parallel="{parallel}"',
               *extra]
    for override in OVERRIDES:
        command += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


def test_gradient_checkpointing_and_bf16_autocast_keep_the_numbers(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    base = ["run.steps=2", "run.log_every=1", "checkpoint.every=2", "train.batch_size=2", "data.max_pairs=2"]
    runs = {"fp32": [], "checkpointed": ["model.gradient_checkpointing=true"], "bf16": ["train.precision='bf16'"]}
    for name, extra in runs.items():
        train(load_config(config_path, base + extra), tmp_path / name)
    fp32, checkpointed = _weights_at(tmp_path / "fp32"), _weights_at(tmp_path / "checkpointed")
    assert all(torch.equal(fp32[k], checkpointed[k]) for k in fp32)  # recomputation changes nothing
    # bf16 autocast: the first loss (same weights, same data) agrees to bf16 tolerance.
    first = [read_metrics(tmp_path / name)[0]["loss"] for name in ("fp32", "bf16")]
    assert abs(first[1] - first[0]) / first[0] < 1e-2
    assert JDiT.from_pretrained(str(tmp_path / "checkpointed" / "export")).config.gradient_checkpointing is False


def _weights_at(run_dir, step=2):
    return read_model_weights(run_dir / "checkpoints" / f"step-{step:08d}")

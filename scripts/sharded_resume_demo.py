"""Sharded training, killed and resumed on 2, 1 and 4 ranks: the done-when run of FSDP2 + DCP checkpoints.

    python scripts/sharded_resume_demo.py --work /work/scratch/demo               # lavin-medium, 207M parameters
    python scripts/sharded_resume_demo.py --work /tmp/demo --preset lavin-tiny --steps 4   # a quick look

Under ``torchrun --nproc_per_node 2`` (gloo on the CPU) it trains ``configs/lavin-medium-fsdp.toml``
(FSDP2, each rank holding half the model) on a toy template task for ``--steps`` steps with a
DCP checkpoint every 2 steps, uninterrupted; then the same run again, killed with SIGKILL (every
rank and torchrun) as soon as its first checkpoint is committed; then that killed run
resumed on 2, 1 and 4 ranks. It prints each rank's share of the parameters (the trainer's own
line), the peak resident memory of each run's largest rank, and how the final weights of every
resumed run compare with the uninterrupted one: bitwise on 2 ranks, within float tolerance on 1
and 4 (the sums of a gradient's pieces happen in another order).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lavin_core.jdit import get_preset
from lavin_core.train.checkpointing import latest_checkpoint, read_model_weights
from lavin_core.train.memory import training_memory
from lavin_core.train.toy import make_toy_workspace

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lavin-medium-fsdp.toml"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun's ranks run in sessions of their own: killing
    torchrun's process group would leave them training)."""
    found = []
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = [int(c) for c in child.read_text().split()]
        except FileNotFoundError:
            continue
        for cpid in pids:
            found += [cpid, *_descendants(cpid)]
    return found


def _tree_peak_gb(pid: int) -> float:
    """The largest ``VmHWM`` among ``pid``'s descendants (the ranks under torchrun), in GB."""
    peak = 0
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for cpid in child.read_text().split():
            try:
                for line in Path(f"/proc/{cpid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except FileNotFoundError:
                continue
            peak = max(peak, int(_tree_peak_gb(int(cpid)) * 1e9 / 1024))
    return peak * 1024 / 1e9


def torchrun(ranks: int, out: Path, overrides: list[str], *extra: str, kill_after_checkpoint: bool = False
             ) -> tuple[float, str]:
    """Run the trainer on ``ranks`` ranks; returns (peak GB of its largest rank, its stderr's rank lines)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
               "-m", "lavin_core.train", str(CONFIG), "--out", str(out), *extra]
    for override in overrides:
        command += ["--set", override]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _tree_peak_gb(process.pid))
            if kill_after_checkpoint and latest_checkpoint(out) is not None:
                for victim in [*_descendants(process.pid), process.pid]:  # the ranks first, then torchrun
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                process.wait()
                break
            time.sleep(0.2)
    text = log.read_text()
    if not kill_after_checkpoint and process.returncode != 0:
        raise SystemExit(f"torchrun on {ranks} ranks failed (log {log}):\n{text[-3000:]}")
    return peak, "\n".join(line for line in text.splitlines() if "holds" in line)


def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[bool, float, float]:
    """(bitwise equal, max |a - b|, ||a - b|| / ||a||) over all tensors."""
    equal = all(torch.equal(a[k], b[k]) for k in a)
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    num = sum(float((a[k].double() - b[k].double()).square().sum()) for k in a)
    den = sum(float(a[k].double().square().sum()) for k in a)
    return equal, diff, (num / den) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder (checkpoints: GBs)")
    parser.add_argument("--preset", default="lavin-medium")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    make_toy_workspace(work / "toy")
    overrides = [f'model.preset="{args.preset}"', f'model.vae="{(work / "toy" / "vae").as_posix()}"',
                 f'data.templates=["{(work / "toy" / "invert").as_posix()}"]', f"run.steps={args.steps}"]
    estimate = training_memory(get_preset(args.preset), cond_frames=3, latent_size=4, activation_checkpointing=False,
                               world_size=2)
    print(f"{args.preset}: {estimate.parameters:,} parameters; per rank on 2 ranks (computed): weights + gradients "
          f"+ AdamW + EMA = {estimate.states / 1e9:.2f} GB")

    start = time.perf_counter()
    peak, held = torchrun(2, work / "straight", overrides)
    print(f"uninterrupted, 2 ranks: {time.perf_counter() - start:.0f} s, peak RSS of a rank {peak:.2f} GB\n{held}")
    start = time.perf_counter()
    torchrun(2, work / "killed", overrides, kill_after_checkpoint=True)
    saved = latest_checkpoint(work / "killed")
    print(f"killed with SIGKILL after {time.perf_counter() - start:.0f} s; latest committed checkpoint: {saved.name}")

    final = f"checkpoints/step-{args.steps:08d}"
    reference = {name: read_model_weights(work / "straight" / final, name) for name in ("model", "ema")}
    for ranks in (2, 1, 4):
        resumed = work / f"resumed-{ranks}"
        shutil.copytree(work / "killed", resumed, copy_function=os.link)  # hard links: no copy of the shards
        start = time.perf_counter()
        peak, held = torchrun(ranks, resumed, overrides, "--resume")
        print(f"resumed on {ranks} rank(s): {time.perf_counter() - start:.0f} s, peak RSS of a rank {peak:.2f} GB\n{held}")
        for name in ("model", "ema"):
            equal, diff, rel = compare(reference[name], read_model_weights(resumed / final, name))
            print(f"  {name}: {'bitwise equal' if equal else 'differs'}; max |diff| {diff:.3g}, relative {rel:.3g}")


if __name__ == "__main__":
    main()

"""The training loop shared by the ST-VAE and J-DiT stages.

Order of set-up (torchtitan's): distributed init -> seed -> build the stage's model (the J-DiT
on the meta device: no memory yet) -> EMA copy -> parallelize (activation checkpointing, compile
as ``model.compile`` resolves for this run (``lavin_core.train.compile``), FSDP2, and the EMA
sharded alike; ``lavin_core.train.parallelize``) -> materialize (each rank allocates and fills
only its shards: initial values, or the ``model.init`` weights to fine-tune from) -> DDP, if
chosen -> optimizer (fused AdamW where it applies) and LR schedule -> resume. Each step: the
stage's loss on this rank's share of the global batch, a NaN check over all ranks, backward,
gradient clipping, AdamW, LR schedule, EMA, then logging, checkpoints and sample grids at their
intervals. The end exports the EMA weights with ``save_pretrained``.

    >>> from lavin_core.train import train
    >>> export_dir = train(load_config("configs/lavin-tiny/dit.toml"), "runs/lavin-tiny-dit")
"""

from __future__ import annotations

import copy
import math
import random
import sys
from pathlib import Path

import attrs
import numpy as np
import torch

from lavin_core.atomic import write_text
from lavin_core.checkpoint import load_pretrained_into, read_pretrained_weights
from lavin_core.devices import autocast_dtype
from lavin_core.errors import LavinError
from lavin_core.pretrained import model_part
from lavin_core.train import distributed as dist_utils
from lavin_core.train.checkpointing import CheckpointManager, export_pretrained, latest_checkpoint
from lavin_core.train.compile import compile_seconds, resolve_compile
from lavin_core.train.parallelize import choose_parallel, is_meta, materialize, parallelize, plan, shard, wrap_ddp
from lavin_core.train.config import TrainConfig, check_local_path, dump_toml
from lavin_core.train.ema import EMA
from lavin_core.train.metrics import MetricsLogger
from lavin_core.train.optim import make_optimizer

EXPORT_DIR = "export"
CONFIG_FILE = "config.toml"


class TrainingError(LavinError):
    """The run cannot go on: a NaN loss, or a run folder that would be overwritten."""


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, decay: str, min_lr_ratio: float) -> float:
    """The multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then constant or cosine."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    """The same seed on every rank, so that every rank builds identical initial weights."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_stage(config: TrainConfig, info: dist_utils.DistInfo):
    dtype = autocast_dtype(config.train.precision, info.device)
    if dtype is not None and config.train.precision == "auto" and info.device.type == "cpu" and info.is_main:
        print("lavin train: bf16 autocast (train.precision = \"auto\": this CPU has native bf16 matmuls; "
              "set train.precision = \"fp32\" for float32)", file=sys.stderr)
    if config.run.stage == "dit":
        from lavin_core.train.dit_stage import DiTStage

        return DiTStage(config, info, dtype)
    from lavin_core.train.vae_stage import VAEStage

    return VAEStage(config, info, dtype)


class LogWindow:
    """The loss and the stage's terms of the steps since the last log line, for their means.

    One batch holds one task of the mix, so a single step's loss swings with the task drawn;
    the mean over the ``run.log_every`` steps is the curve worth plotting. The loss is summed as
    a tensor (no device sync per step); a term a step lacks is averaged over the steps that have it.
    """

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self.loss, self.steps, self.sums, self.counts = None, 0, {}, {}

    def add(self, loss: torch.Tensor, terms: dict[str, float]) -> None:
        self.loss = loss.detach() if self.loss is None else self.loss + loss.detach()
        self.steps += 1
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> tuple[float, dict[str, float]]:
        """``(mean loss, {term: mean})`` of the window, which then starts again."""
        loss = (self.loss / self.steps).item()
        terms = {key: self.sums[key] / self.counts[key] for key in self.sums}
        self._reset()
        return loss, terms


def _grad_norm(parameters: list[torch.nn.Parameter], clip: float) -> float:
    """Clip the global gradient norm to ``clip`` (if positive) and return the norm before clipping."""
    grads = [p for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.nn.utils.clip_grad_norm_(grads, clip if clip > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
        norm = norm.full_tensor()
    return float(norm)


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False) -> Path:
    """Train as ``config`` says, writing into ``run_dir``; returns the export folder (EMA weights).

    With ``resume``, continue from the latest checkpoint in ``run_dir`` (a fresh start if none).
    Works alone or under ``torchrun`` (every rank calls it).
    """
    run_dir = Path(run_dir)
    info = dist_utils.setup(config.run.device)
    try:
        return _train(config, run_dir, info, resume=resume)
    finally:
        dist_utils.teardown()


def _train(config: TrainConfig, run_dir: Path, info: dist_utils.DistInfo, *, resume: bool) -> Path:
    latest = latest_checkpoint(run_dir)
    if latest is not None and not resume:
        raise TrainingError(f"{run_dir} already holds checkpoints (latest {latest.name}); pass --resume to "
                            "continue that run, or choose another --out")
    seed_everything(config.run.seed)
    stage = build_stage(config, info)
    fine_tune = bool(config.model.init and not (resume and latest))
    if fine_tune:
        check_local_path("model.init", config.model.init, "weights to start from")
    compiling_before = compile_seconds()
    objective, ema, compiled = _build_parallel(stage, config, info, fine_tune=fine_tune)
    model = stage.model
    if info.is_distributed:
        held, total = _local_and_global_numel(model)
        print(f"lavin train: rank {info.rank} holds {held:,} of the model's {total:,} parameters "
              f"({100 * held / total:.1f}%)", file=sys.stderr)

    parameters = [p for p in objective.parameters() if p.requires_grad]
    o = config.optimizer
    optimizer = make_optimizer(parameters, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, eps=o.eps)
    s = config.schedule
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
        step, total_steps=config.run.steps, warmup_steps=s.warmup_steps, decay=s.decay, min_lr_ratio=s.min_lr_ratio))

    models = {"model": model, "ema": ema.shadow, **stage.extra_models()}
    optimizers = {"optimizer": (objective, optimizer), **stage.extra_optimizers()}
    manager = CheckpointManager(run_dir, keep_last=config.checkpoint.keep_last, info=info,
                                models=models, optimizers=optimizers, async_save=config.checkpoint.async_save)
    start = 0
    if resume and latest is None and info.is_main:
        print(f"lavin train: no checkpoint in {run_dir}; starting from step 0", file=sys.stderr)
    if resume and latest is not None:
        trainer_state, _ = manager.load(latest)
        start = int(trainer_state["step"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        ema.updates = int(trainer_state["ema_updates"])
        stage.load_extra_state(trainer_state["stage"])
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG_FILE, dump_toml(config))

    def save(step: int) -> Path:
        return manager.save(
            step,
            trainer_state={"step": step, "scheduler": scheduler.state_dict(), "ema_updates": ema.updates,
                           "stage": stage.extra_state()},
            rank_state={"data_step": step},
            meta={"stage": config.run.stage, "model": attrs.asdict(config.model)},
        )

    logger = MetricsLogger(run_dir, total_steps=config.run.steps, start_step=start, enabled=info.is_main)
    last_saved = latest if start else None
    samples_since_log = 0
    window = LogWindow()
    try:
        for step in range(start, config.run.steps):
            objective.train()
            loss, extra = stage.loss(objective, step)
            reported = dist_utils.mean_over_ranks(loss.detach().float().reshape(1), info)
            if not torch.isfinite(reported).all():
                where = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written yet"
                raise TrainingError(
                    f"loss is {reported.item()} at step {step}; {where}. Lower optimizer.lr, raise "
                    "schedule.warmup_steps or set train.grad_clip, then resume with --resume"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = _grad_norm(parameters, config.train.grad_clip)
            optimizer.step()
            scheduler.step()
            ema.update(model)
            extra.update(stage.after_step(step))
            window.add(reported, extra)
            samples_since_log += config.train.batch_size
            done = step + 1
            if done % config.run.log_every == 0 or done == config.run.steps:
                # The window's means; the stage's terms averaged over ranks like the loss (every rank has the same keys).
                mean_loss, means = window.means()
                terms = dist_utils.mean_over_ranks(torch.tensor(list(means.values()), dtype=torch.float64), info)
                record = {"loss": mean_loss, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                          **dict(zip(means, terms.tolist()))}
                if compiled:  # seconds spent compiling so far (the first steps compile, later shapes may)
                    record["compile_s"] = compile_seconds() - compiling_before
                logger.log(done, record, samples=samples_since_log)
                samples_since_log = 0
            if done % config.checkpoint.every == 0 or done == config.run.steps:
                last_saved = save(done)
            if config.samples.every and done % config.samples.every == 0:
                stage.sample_grid(ema.shadow, done, run_dir / "samples" / f"step-{done:08d}.png")
        manager.wait()
    finally:
        logger.close()
        manager.close()

    export = run_dir / EXPORT_DIR
    # Streamed: each sharded tensor is gathered, written by rank 0 and dropped.
    export_pretrained(stage.model_class, stage.export_config(), ema.shadow.state_dict(), str(export), info)
    dist_utils.barrier(info)
    return export


def _local_and_global_numel(model: torch.nn.Module) -> tuple[int, int]:
    """Parameters this rank stores (its FSDP2 shards, or all of them) and the model's total."""
    from torch.distributed.tensor import DTensor

    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())
    return local, sum(p.numel() for p in model.parameters())


def _build_parallel(stage, config: TrainConfig, info: dist_utils.DistInfo, *, fine_tune: bool):
    """The stage's objective ready to train (parallelized, weights in memory), the EMA of its model
    and whether its blocks are compiled.

    A model built on the meta device is parallelized first and then materialized, so each rank
    allocates only its shards; a model built in memory (the ST-VAE) is moved to the device first.
    """
    model = stage.model
    meta = is_meta(model)
    init_source = copy.deepcopy(model) if meta else None  # unwrapped: its names and init rules
    if fine_tune:
        source = model_part(config.model.init, stage.name)
        if meta:
            weights = read_pretrained_weights(init_source, stage.export_config(), source)
        else:
            load_pretrained_into(model, stage.export_config(), source)
    if not meta:
        stage.objective.to(info.device)
    ema = EMA(model, config.train.ema_decay)
    parallel = choose_parallel(model, config.model.parallel, info)
    compiled = resolve_compile(config, stage.model_config, info.device)
    if compiled and info.is_main:
        why = '"auto": this run is long enough to repay it' if config.model.compile == "auto" else "true"
        print(f"lavin train: compiling the repeated blocks (model.compile = {why}); the first steps take "
              "longer, metrics.jsonl logs the seconds as compile_s", file=sys.stderr)
    steps = plan(parallel=parallel, activation_checkpointing=config.model.gradient_checkpointing, compile=compiled)
    objective = parallelize(stage.objective, tuple(s for s in steps if s != "ddp"), info)
    if parallel == "fsdp":
        shard(ema.shadow)
    if meta:
        def fill(name: str, full: torch.Tensor) -> None:
            if fine_tune:
                full.copy_(weights[name])
            else:
                init_source.init_parameter(name, full)

        for module in (model, ema.shadow):
            materialize(module, info.device, fill)
    if "ddp" in steps:
        objective = wrap_ddp(objective, info)
    return objective, ema, compiled

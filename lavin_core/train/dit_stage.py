"""The J-DiT training step: conditional flow matching on frozen ST-VAE latents.

Per sample (all drawn from ``(seed, step, sample index)``, so any number of ranks gives the same
run): a time ``t ~ sigmoid(N(0, 1))`` (the official logit-normal), noise ``e``, and with
probability ``cfg_dropout`` the null context ``[0, query]`` in place of the example pairs, so that
classifier-free guidance works at inference. The loss is the official velocity loss
``MSE + 0.1 L1`` between ``J-DiT(z_t, t, context)`` and ``e - z``.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
from torch import Tensor, nn

from lavin_core.flow import FlowMatchingLoss, LogitNormalTimeSampler, interpolate, target_velocity
from lavin_core.data.outputs import save_image
from lavin_core.jdit import JDiT, get_preset
from lavin_core.data.loader import ContextBatch, ContextLoader, mix_seed
from lavin_core.pretrained import model_part
from lavin_core.samplers import EulerSampler, get_schedule, null_context
from lavin_core.stvae import STVAE
from lavin_core.train.config import TrainConfig, check_local_path
from lavin_core.train.data import data_sources, make_loader
from lavin_core.train.distributed import DistInfo


def generator_for(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys, e.g. ``(seed, step, sample index)``."""
    return torch.Generator().manual_seed(mix_seed(*keys))


def draw_sample_randomness(indices: list[int], seed: int, step: int, shape: tuple[int, ...], cfg_dropout: float
                           ) -> tuple[Tensor, Tensor, Tensor]:
    """Times ``(B,)``, noise ``(B, *shape)`` and null-context flags ``(B,)`` of each sample (CPU, float32)."""
    times, noises, drops = [], [], []
    time_sampler = LogitNormalTimeSampler()
    for index in indices:
        generator = generator_for(seed, step, index)
        times.append(time_sampler(1, generator=generator))
        noises.append(torch.randn(shape, generator=generator))
        drops.append(torch.rand(1, generator=generator) < cfg_dropout)
    return torch.cat(times), torch.stack(noises), torch.cat(drops)


def _grid_schedule(num_steps: int) -> str:
    """The official time grid where it exists for ``num_steps``, else a uniform one."""
    try:
        get_schedule("official", num_steps)
    except ValueError:
        return "uniform"
    return "official"


class DiTObjective(nn.Module):
    """``forward(...)`` -> per-sample flow-matching losses ``(B,)``; the module DDP wraps.

    Samples with the null context run through the J-DiT in a second call (their context is
    shorter); both calls happen inside this one forward, which DDP and FSDP2 both support.
    """

    def __init__(self, model: JDiT, *, autocast_dtype: torch.dtype | None):
        super().__init__()
        self.model = model
        self.loss = FlowMatchingLoss(kind="official", l1_weight=0.1)
        self.autocast_dtype = autocast_dtype

    def forward(self, target: Tensor, cond: Tensor, null_cond: Tensor, t: Tensor, noise: Tensor, drop: Tensor
                ) -> Tensor:
        """target ``(B, C, T, h, w)``, cond ``(B, C, T_c, h, w)``, null_cond ``(B, C, 1 + T_q, h, w)``,
        t ``(B,)``, noise like target, drop ``(B,)`` bool."""
        z_t, velocity = interpolate(target, noise, t), target_velocity(target, noise)
        losses = target.new_zeros(target.shape[0], dtype=torch.float32)
        device_type = target.device.type
        with torch.autocast(device_type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            for mask, context in ((~drop, cond), (drop, null_cond)):
                if mask.any():
                    prediction = self.model(z_t[mask], t[mask], context[mask])
                    losses = losses.index_put((mask.nonzero().squeeze(1),),
                                              self.loss.per_sample(prediction.float(), velocity[mask].float()))
        return losses


class DiTStage:
    """Builds the J-DiT, its frozen encoder and the data, and computes a step's loss."""

    name = "dit"

    def __init__(self, config: TrainConfig, info: DistInfo, autocast_dtype: torch.dtype | None):
        self.config, self.info = config, info
        # Activation checkpointing is applied from outside (lavin_core.train.parallelize).
        model_config = get_preset(config.model.preset)
        if not config.model.vae:
            raise ValueError(
                "the dit stage needs a trained ST-VAE: set model.vae to the folder a vae-stage run exported "
                "(RUN_DIR/export), e.g. --set model.vae=runs/lavin-tiny-vae/export"
            )
        check_local_path("model.vae", config.model.vae, "trained ST-VAE")
        vae = model_part(config.model.vae, "vae")
        self.vae = STVAE.from_pretrained(vae, device=info.device).requires_grad_(False).eval()
        if self.vae.latent_channels != model_config.in_channels:
            raise ValueError(
                f"the ST-VAE at {vae} has {self.vae.latent_channels} latent channels but J-DiT "
                f"preset {config.model.preset!r} takes {model_config.in_channels}"
            )
        self.model_config = model_config
        self.model_class = JDiT
        with torch.device("meta"):  # the trainer gives each rank its shards (parallelize.materialize)
            self.model = JDiT(model_config)
        self.objective = DiTObjective(self.model, autocast_dtype=autocast_dtype)
        self.autocast_dtype = autocast_dtype
        # Every batch comes out as latents: pixel sources are encoded by the frozen ST-VAE in the
        # loader, caches are checked against it.
        self.loader = make_loader(config, info, encoder=self.vae)
        self._grid_loader: ContextLoader | None = None

    # -- the step -------------------------------------------------------------------------------

    def loss(self, objective: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        """This rank's mean loss for ``step`` (its share of the global batch) and metrics to log."""
        c = self.config
        batch = self.loader.batch(step)
        cond, query, target = self._latents(batch)
        device = self.info.device
        t, noise, drop = draw_sample_randomness(list(batch.indices), c.run.seed, step, tuple(target.shape[1:]),
                                                c.train.cfg_dropout)
        losses = objective(target, cond, null_context(query), t.to(device), noise.to(device), drop.to(device))
        return losses.mean(), {"num_pairs": float(batch.num_pairs)}

    def _latents(self, batch: ContextBatch) -> tuple[Tensor, Tensor, Tensor]:
        """``(cond, query, target)`` latents of a batch on the device, float32."""
        device = self.info.device
        return tuple(x.to(device).float() for x in (batch.cond(), batch.query, batch.target))

    # -- sample grids ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample_grid(self, model: nn.Module, step: int, path: Path) -> None:
        """Write a PNG with one row per context: pairs | query | prediction | ground truth.

        The contexts are the same at every call (drawn with another seed than training). Every
        rank must call it (the EMA model may be sharded); rank 0 writes the file.
        """
        c = self.config
        if self._grid_loader is None:
            num_pairs = min(max(c.data.min_pairs, 2), c.data.max_pairs)
            self._grid_loader = ContextLoader(
                data_sources(c, encoder=self.vae), batch_size=c.samples.count, min_pairs=num_pairs,
                max_pairs=num_pairs, seed=mix_seed(c.run.seed, 0x5A), encoder=self.vae,
            )
        batch = self._grid_loader.batch(0)
        cond, query, target = self._latents(batch)
        device = self.info.device
        noise = torch.randn(target.shape, generator=generator_for(c.run.seed, 0x5A)).to(device)
        was_training = model.training
        model.eval()
        sampler = EulerSampler(schedule=_grid_schedule(c.samples.num_steps))
        with torch.autocast(device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            latents = sampler.sample(model, noise, cond, null_cond=null_context(query),
                                     guidance_scale=c.samples.guidance_scale, num_steps=c.samples.num_steps)
        model.train(was_training)
        if not self.info.is_main:
            return
        cells = [*[x for pair in batch.pairs for x in pair], batch.query, latents, batch.target]
        pixels = [self.vae.decode(x.to(device)).cpu() for x in cells]  # each (B, 3, T, H, W)
        rows = [torch.cat([p[i, :, :1] for p in pixels], dim=-1) for i in range(c.samples.count)]  # first frames
        save_image(torch.cat(rows, dim=-2), path)  # atomically: a kill never leaves half a PNG

    # -- what the trainer asks of every stage ---------------------------------------------------

    def export_config(self):
        """The config written beside the exported weights (no training-only options)."""
        return attrs.evolve(self.model_config, gradient_checkpointing=False)

    def extra_models(self) -> dict[str, nn.Module]:
        return {}

    def extra_optimizers(self) -> dict:
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def after_step(self, step: int) -> dict[str, float]:
        return {}

"""The ST-VAE training step: reconstruction + KL + perceptual + adversarial, images then clips.

The pixels are the inputs and targets of the task examples. For the first ``vae.image_steps``
steps (the image stage) only the first frame of each is used; afterwards (the joint stage) clips
stay clips, so tasks that produce videos train the temporal path. A query-guided ST-VAE
(``query_guide``, see ``lavin_core.stvae.guide``) learns what it will do in a pipeline: it
reconstructs the targets, its decoder guided by their queries. With ``vae.latent_noise`` the
decoder sees noisy latents, as a J-DiT's estimates are (``lavin_core.stvae.latent_noise``). The
patch discriminator has its own AdamW and steps after the autoencoder, on detached
reconstructions, once ``adversarial_start_step`` is reached.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lavin_core.data.outputs import save_image
from lavin_core.data.loader import ContextLoader, mix_seed

from lavin_core.stvae import STVAE, get_preset
from lavin_core.stvae.guide import guide_frames
from lavin_core.stvae.losses import LossWeights, PatchDiscriminator3D, STVAELoss, hinge_discriminator_loss
from lavin_core.train.config import TrainConfig
from lavin_core.train.data import data_sources, make_loader
from lavin_core.train.dit_stage import generator_for
from lavin_core.train.distributed import DistInfo
from lavin_core.train.estimates import TargetEstimator, is_estimate_step
from lavin_core.train.freeze import freeze_all_but
from lavin_core.train.optim import make_optimizer
from lavin_core.train.parallelize import choose_parallel, parallelize, plan, unwrap


class VAEObjective(nn.Module):
    """``forward(pixels, step, generator, discriminator, guide, latents)`` -> (reconstruction, loss terms
    incl. ``total``); ``latents``, when given, are decoded in place of the posterior's (a J-DiT's estimates)."""

    def __init__(self, model: STVAE, weights: LossWeights, *, autocast_dtype: torch.dtype | None,
                 latent_noise: float = 0.0):
        super().__init__()
        self.model = model
        self.loss = STVAELoss(weights)
        self.autocast_dtype = autocast_dtype
        self.latent_noise = latent_noise

    def forward(self, pixels: Tensor, step: int, generator: torch.Generator, discriminator: nn.Module | None,
                guide: Tensor | None = None, latents: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.autocast(pixels.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            reconstruction, posterior = self.model(pixels, generator=generator, guide=guide,
                                                   latent_noise=self.latent_noise, latents=latents)
            terms = self.loss(pixels, reconstruction.float(), posterior, step=step, discriminator=discriminator)
        return reconstruction, terms


class VAEStage:
    """Builds the ST-VAE and its discriminator and computes a step's loss."""

    name = "vae"

    def __init__(self, config: TrainConfig, info: DistInfo, autocast_dtype: torch.dtype | None):
        self.config, self.info = config, info
        vc = config.vae
        self.model_config = get_preset(config.model.preset)
        self.model_class = STVAE
        self.model = STVAE(self.model_config)
        # Frozen before the optimizer and any DDP/FSDP wrapper are built, which take only trainable
        # parameters; with the encoder frozen the KL term carries no gradient.
        if vc.train_only:
            freeze_all_but(self.model, vc.train_only)
        if not vc.train_encoder:
            self.model.encoder.requires_grad_(False)
        self.weights = LossWeights(reconstruction=vc.reconstruction, kl_weight=vc.kl_weight,
                                   perceptual_weight=vc.perceptual_weight,
                                   adversarial_weight=vc.adversarial_weight,
                                   adversarial_start_step=vc.adversarial_start_step)
        self.objective = VAEObjective(self.model, self.weights, autocast_dtype=autocast_dtype,
                                      latent_noise=vc.latent_noise)
        self.discriminator = PatchDiscriminator3D().to(info.device)
        steps = plan(parallel=choose_parallel(self.discriminator, config.model.parallel, info),
                     activation_checkpointing=False, compile=False)
        self.parallel_discriminator = parallelize(self.discriminator, steps, info)
        self.discriminator_optimizer = make_optimizer(
            self.parallel_discriminator.parameters(), lr=vc.discriminator_lr, betas=(0.5, 0.9))
        # One pair per context is the loader's minimum; its query input and target are the images.
        self.loader = make_loader(config, info, min_pairs=1, max_pairs=1)
        self.estimator: TargetEstimator | None = None
        if vc.denoiser:
            if choose_parallel(self.model, config.model.parallel, info) == "fsdp":
                raise ValueError(f"vae.denoiser = {vc.denoiser!r} encodes its contexts with the unsharded encoder: "
                                 'run it in one process or with model.parallel = "ddp", not FSDP2')
            # Whole contexts (the J-DiT's pair counts) from a stream of their own.
            self.estimate_loader = make_loader(config, info, seed=mix_seed(config.run.seed, 0xE5))
            self.estimator = TargetEstimator.load(vc.denoiser, encoder=self.model, num_steps=vc.estimate_steps,
                                                  device=info.device, precision="fp32" if autocast_dtype is None else "bf16")
        self._last_reconstruction: tuple[Tensor, Tensor] | None = None
        self._grid_loader: ContextLoader | None = None

    def estimates_at(self, step: int) -> bool:
        """Whether ``step`` decodes the J-DiT's estimates: ``estimate_share`` of the steps, evenly spread."""
        return self.estimator is not None and is_estimate_step(step, self.config.vae.estimate_share)

    def pixels(self, step: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """This rank's pixels for ``step``, their guides and the latents to decode in place of theirs:
        the query inputs and targets ``(2B, 3, T, H, W)`` and no guide, or for a query-guided ST-VAE
        the targets ``(B, 3, T, H, W)`` and their queries as guides (``guide_frames``); on an
        estimate step (``estimates_at``) the targets of whole contexts and the J-DiT's estimates of
        their latents, else no latents."""
        latents = None
        if self.estimates_at(step):
            batch = self.estimate_loader.batch(step)
            latents = self.estimator(batch, generator_for(mix_seed(self.config.run.seed, 0xE5), step, self.info.rank))
        else:
            batch = self.loader.batch(step)
        if batch.latent:
            raise ValueError('the vae stage trains on pixels; use data.source = "generators" or "templates"')
        if self.model.takes_guide or latents is not None:
            pixels = batch.target
        else:
            pixels = torch.cat([batch.query, batch.target]) if batch.query.shape == batch.target.shape else batch.query
        guide = guide_frames(batch.query, pixels.shape[2], tuple(pixels.shape[-2:])) if self.model.takes_guide else None
        if step < self.config.vae.image_steps:
            pixels = pixels[:, :, :1]  # the image stage
            guide = None if guide is None else guide[:, :, :1]
            latents = None if latents is None else latents[:, :, :1]  # causal: latent frame 0 is pixel frame 0
        return tuple(None if x is None else x.to(self.info.device) for x in (pixels, guide, latents))

    def loss(self, objective: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        pixels, guide, latents = self.pixels(step)
        generator = generator_for(self.config.run.seed, step, self.info.rank)
        adversarial = step >= self.weights.adversarial_start_step and self.weights.adversarial_weight > 0
        # The autoencoder's adversarial term runs the discriminator outside its DDP wrapper (no
        # gradient sync); the gradients it leaves on the discriminator are cleared before the
        # discriminator's own update. (Toggling requires_grad instead would break FSDP2.)
        reconstruction, terms = objective(pixels, step, generator, self.discriminator if adversarial else None, guide,
                                          latents)
        self._last_reconstruction = (pixels, reconstruction.detach()) if adversarial else None
        metrics = {f"loss_{k}": v.item() for k, v in terms.items() if k != "total"}
        metrics["stage_joint"] = float(step >= self.config.vae.image_steps)
        if self.estimator is not None:
            metrics["estimates"] = float(latents is not None)
        return terms["total"], metrics

    def after_step(self, step: int) -> dict[str, float]:
        """The discriminator's update on this step's real pixels and detached reconstructions."""
        if self._last_reconstruction is None:
            return {}
        real, fake = self._last_reconstruction
        self._last_reconstruction = None
        both = self.parallel_discriminator(torch.cat([real, fake.to(real.dtype)]))
        loss = hinge_discriminator_loss(*both.chunk(2))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator_optimizer.step()
        return {"loss_discriminator": loss.detach().item()}

    @torch.no_grad()
    def sample_grid(self, model: nn.Module, step: int, path: Path) -> None:
        """Write a PNG with one row per image: original | reconstruction (posterior mean), first frames
        (a query-guided ST-VAE: target | reconstruction guided by the query).

        The images are the same at every call. Every rank must call it (the EMA model may be
        sharded); rank 0 writes the file.
        """
        c = self.config
        if self._grid_loader is None:
            self._grid_loader = ContextLoader(data_sources(c), batch_size=c.samples.count, min_pairs=1, max_pairs=1,
                                              seed=mix_seed(c.run.seed, 0x5A))
        batch = self._grid_loader.batch(0)
        pixels = batch.target.to(self.info.device)
        guide = (guide_frames(batch.query, pixels.shape[2], tuple(pixels.shape[-2:])).to(self.info.device)
                 if self.model.takes_guide else None)
        was_training = model.training
        model.eval()
        # forward (not encode/decode): FSDP2 gathers a sharded model's weights around forward only.
        reconstruction = model(pixels, guide=guide)[0].clamp(-1.0, 1.0).cpu()
        model.train(was_training)
        if not self.info.is_main:
            return
        rows = [torch.cat([x[i, :, :1] for x in (pixels.cpu(), reconstruction)], dim=-1)  # first frames
                for i in range(pixels.shape[0])]
        save_image(torch.cat(rows, dim=-2), path)  # atomically: a kill never leaves half a PNG

    # -- what the trainer asks of every stage ---------------------------------------------------

    def export_config(self):
        return self.model_config

    def extra_models(self) -> dict[str, nn.Module]:
        return {"discriminator": unwrap(self.parallel_discriminator)}

    def extra_optimizers(self) -> dict:
        return {"discriminator_optimizer": (self.parallel_discriminator, self.discriminator_optimizer)}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

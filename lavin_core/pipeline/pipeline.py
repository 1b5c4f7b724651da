"""In-context prediction: example pairs + a query in, the query's target out.

    >>> pipe = load_pipeline("lavin-tiny")   # the shipped model; or dit=..., vae=... checkpoints
    >>> out = pipe(pairs=[("a_in.png", "a_out.png")], query="q.png", num_steps=19, generator=torch.Generator().manual_seed(0))
    >>> out.images()[0].save("prediction.png")

The path of a tensor: pixels ``(3, T, H, W)`` of ``[in_1, tgt_1, ..., in_N, tgt_N, query]`` ->
``Encoder.encode`` -> latents joined along time into the context ``(B, C, T_cond, h, w)`` ->
``Sampler.sample`` from noise ``(B, C, T', h, w)`` with CFG against ``[0, query]`` ->
``Encoder.decode`` -> the prediction ``(B, 3, T, H, W)`` in [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.data.images import check_size
from lavin_core.data.latents import LatentCache
from lavin_core.flow import randn_like
from lavin_core.interfaces import Denoiser, Encoder, Sampler, StepCallback
from lavin_core.pipeline.inputs import build_context
from lavin_core.pipeline.output import InContextOutput
from lavin_core.pretrained import folders
from lavin_core.pretrained.loading import load_denoiser, load_encoder
from lavin_core.samplers import EulerSampler, get_sampler, null_context


def _module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    if tensor is None:
        return torch.device("cpu"), torch.float32
    return tensor.device, tensor.dtype


#: The classifier-free guidance scale of the authors' inference code.
OFFICIAL_GUIDANCE = 1.5


def check_sampling(guidance_scale: float | None, temperature: float | None) -> None:
    """One-line errors for a negative CFG scale or noise temperature (None means the default)."""
    if guidance_scale is not None and guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
    if temperature is not None and temperature < 0:
        raise ValueError(f"temperature must be >= 0 (1 = the noise the model was trained on), got {temperature}")


class InContextPipeline:
    """Encoder + Denoiser + Sampler: generates the target of a query from a few example pairs.

    Device and dtype follow the models: inputs go to the encoder's, latents to the denoiser's.
    ``pipeline.to(device, dtype)`` moves both. ``guidance_scale`` is the CFG scale calls use when
    they name none: the official 1.5, or what a model folder's ``model_index.json`` recommends.
    ``temperature`` likewise scales the starting noise (1, or the model's recommendation): below 1
    the sampler starts nearer the middle of the noise distribution and lands nearer the most
    likely target, trading diversity for fidelity (Glow's temperature, BigGAN's truncation).
    """

    def __init__(self, encoder: Encoder, denoiser: Denoiser, sampler: Sampler | None = None, *,
                 guidance_scale: float = OFFICIAL_GUIDANCE, temperature: float = 1.0):
        check_sampling(guidance_scale, temperature)
        if encoder.latent_channels != denoiser.in_channels:
            raise ValueError(
                f"the encoder makes {encoder.latent_channels}-channel latents but the denoiser takes "
                f"{denoiser.in_channels}; pair models built for each other"
            )
        self.encoder, self.denoiser = encoder, denoiser
        self.sampler = sampler if sampler is not None else EulerSampler()
        self.guidance_scale = float(guidance_scale)
        self.temperature = float(temperature)

    @property
    def device(self) -> torch.device:
        return _module_device_dtype(self.denoiser)[0]

    @property
    def dtype(self) -> torch.dtype:
        return _module_device_dtype(self.denoiser)[1]

    @property
    def size_multiple(self) -> int:
        """Heights and widths the models take are multiples of this (VAE stride x patch size)."""
        return self.encoder.spatial_compression * self.denoiser.patch_size

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> InContextPipeline:
        """Move (and cast) both models; returns ``self``."""
        self.encoder.to(device=device, dtype=dtype)
        self.denoiser.to(device=device, dtype=dtype)
        return self

    # -- encoding ---------------------------------------------------------------------------

    def _encode_all(self, images: list[Tensor]) -> list[Tensor]:
        """Latents ``(C, T', h, w)`` of each pixel tensor; tensors of one shape are encoded in one batch."""
        device, dtype = _module_device_dtype(self.encoder)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, pixels in enumerate(images):
            groups.setdefault(tuple(pixels.shape), []).append(index)
        out: list[Tensor | None] = [None] * len(images)
        for indices in groups.values():
            batch = torch.stack([images[i] for i in indices]).to(device=device, dtype=dtype)
            for i, latents in zip(indices, self.encoder.encode(batch)):
                out[i] = latents
        return out  # type: ignore[return-value]

    def encode_contexts(
        self, contexts: Sequence[TaskContext], *, latent_cache: LatentCache | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """For each context: ``(cond, query)`` latents, ``(C, T_cond, h, w)`` and ``(C, T_q, h, w)``.

        Pair images found in ``latent_cache`` are read from it; all the others are encoded.
        """
        frames: list[list[Tensor | None]] = []
        missing: list[Tensor] = []
        where: list[tuple[int, int]] = []
        for c, context in enumerate(contexts):
            check_size(context.query, self.size_multiple, f"the query of context {c}" if len(contexts) > 1 else "the query")
            row: list[Tensor | None] = []
            for f, pixels in enumerate(context.frames()):
                is_query = f == len(context.frames()) - 1
                cached = None if latent_cache is None or is_query else latent_cache.get(pixels)
                row.append(cached)
                if cached is None:
                    missing.append(pixels)
                    where.append((c, f))
            frames.append(row)
        for (c, f), latents in zip(where, self._encode_all(missing)):
            frames[c][f] = latents
        device, dtype = self.device, self.dtype
        result = []
        for row in frames:
            row = [latents.to(device=device, dtype=dtype) for latents in row]
            result.append((torch.cat(row, dim=1), row[-1]))
        return result

    # -- sampling ---------------------------------------------------------------------------

    # no_grad, not inference_mode: models cache tensors (RoPE tables) that training may reuse later.
    @torch.no_grad()
    def __call__(
        self,
        context: TaskContext | Sequence[TaskContext] | None = None,
        *,
        pairs: Sequence[ExamplePair | tuple[Any, Any]] | None = None,
        query: Any = None,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
        latent_cache: LatentCache | None = None,
        output_type: Literal["pixels", "latent"] = "pixels",
    ) -> InContextOutput:
        """Predict the target of each context's query.

        ``context``: one ``TaskContext`` or a list (batched queries); or pass ``pairs`` and
        ``query`` in any image form (see ``build_context``). ``num_steps=None`` is the sampler's
        default (19 for the official Euler grid). ``guidance_scale=None`` is the pipeline's
        ``guidance_scale`` (1.5, the official CFG, unless the model recommends another; 1 = no null
        pass); ``temperature=None`` the pipeline's ``temperature`` (the starting noise's standard
        deviation; 0 gives one deterministic answer). Noise is drawn from ``generator`` per context,
        in order, on the generator's device, so a seed gives the same result on any device and in
        any batching.
        ``callback(step, t, z)`` runs after every step of every batch of same-shaped contexts.
        ``output_type="latent"`` skips decoding.
        """
        contexts = self._contexts(context, pairs, query)
        if output_type not in ("pixels", "latent"):
            raise ValueError(f"output_type must be 'pixels' or 'latent', got {output_type!r}")
        check_sampling(guidance_scale, temperature)
        guidance_scale = self.guidance_scale if guidance_scale is None else guidance_scale
        temperature = self.temperature if temperature is None else temperature
        encoded = self.encode_contexts(contexts, latent_cache=latent_cache)
        device, dtype = self.device, self.dtype
        noises = []
        for context in contexts:
            shape = self.encoder.latent_shape((1, *context.target_shape))[1:]
            noise = randn_like(torch.empty(shape, device=device, dtype=dtype), generator=generator)
            noises.append(noise if temperature == 1 else noise * temperature)

        # Contexts of one shape sample together; results go back to their original positions.
        groups: dict[tuple, list[int]] = {}
        for index, (cond, query_latents) in enumerate(encoded):
            key = (tuple(cond.shape), tuple(query_latents.shape), tuple(noises[index].shape))
            groups.setdefault(key, []).append(index)
        latents: list[Tensor | None] = [None] * len(contexts)
        for indices in groups.values():
            cond = torch.stack([encoded[i][0] for i in indices])
            null = null_context(torch.stack([encoded[i][1] for i in indices]))
            sampled = self.sampler.sample(
                self.denoiser,
                torch.stack([noises[i] for i in indices]),
                cond,
                null_cond=null,
                guidance_scale=guidance_scale,
                num_steps=num_steps,
                generator=generator,
                callback=callback,
                progress=progress,
            )
            for i, z in zip(indices, sampled):
                latents[i] = z
        if output_type == "latent":
            return InContextOutput(predictions=(), latents=tuple(latents))
        return InContextOutput(predictions=tuple(self.decode(latents)), latents=tuple(latents))

    @torch.no_grad()
    def reconstruct(self, images: Sequence[Tensor]) -> list[Tensor]:
        """Each pixel tensor ``(3, T, H, W)`` through the encoder and back: the best any prediction can be.

        A prediction is decoded from latents, so where even the true target loses detail in this
        round trip, no denoiser can do better; ``lavin bench`` reports it as ``vae_ceiling``.
        """
        return self.decode(self._encode_all(list(images)))

    def decode(self, latents: Sequence[Tensor]) -> list[Tensor]:
        """Float32 pixels ``(3, T, H, W)`` in [-1, 1] for sampled latents ``(C, T', h, w)``."""
        device, dtype = _module_device_dtype(self.encoder)
        out = []
        for z in latents:
            pixels = self.encoder.decode(z[None].to(device=device, dtype=dtype))[0]
            out.append(pixels.float().clamp(-1.0, 1.0))
        return out

    @staticmethod
    def _contexts(context, pairs, query) -> list[TaskContext]:
        if context is not None:
            if pairs is not None or query is not None:
                raise ValueError("pass either a context or pairs= and query=, not both")
            contexts = [context] if isinstance(context, TaskContext) else list(context)
        elif query is not None:
            contexts = [build_context(pairs or [], query)]
        else:
            raise ValueError("nothing to predict: pass a TaskContext (or a list of them), or pairs= and query=")
        for index, item in enumerate(contexts):
            if not isinstance(item, TaskContext):
                raise TypeError(f"contexts[{index}] must be a TaskContext, got {type(item).__name__}")
        if not contexts:
            raise ValueError("the list of contexts is empty")
        return contexts


def load_pipeline(
    model: str | os.PathLike | None = None,
    *,
    dit: str | Denoiser | None = None,
    vae: str | Encoder | None = None,
    sampler: str | Sampler = "euler",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    **sampler_options: Any,
) -> InContextPipeline:
    """An ``InContextPipeline`` from a named model or from checkpoints.

    ``model``: a shipped model name (``"lavin-tiny"``, see ``lavin_core.pretrained.MODELS``) or a model
    folder holding ``dit/`` and ``vae/``; ``dit`` / ``vae`` (see ``load_denoiser`` and
    ``load_encoder``) replace its parts. With neither ``model`` nor ``dit`` and ``vae``, the default
    model (``lavin-tiny``) is loaded. Weights stored in half precision are cast to ``dtype``
    (default float32).
    ``sampler``: a ``Sampler`` or a name in ``samplers.SAMPLERS`` built with ``sampler_options``.
    ``seed`` initialises ``random:PRESET`` models (the global RNG is left untouched).
    The pipeline's default CFG scale and noise temperature are the model's recommended
    ``guidance_scale`` and ``temperature`` (from its ``model_index.json``) when both parts are the
    model's own, else the official 1.5 and 1.
    """
    if model is None and dit is None and vae is None:
        model = folders.DEFAULT_MODEL
    if model is None and (dit is None or vae is None):
        missing = "vae" if vae is None else "dit"
        raise ValueError(f"{missing}= is missing: pass both dit= and vae=, or a model name such as "
                         f"{folders.DEFAULT_MODEL!r}")
    recommended: dict[str, float] = {}
    if model is not None:
        folder = folders.get_model(model)
        if dit is None and vae is None:
            recommended = folder.recommended_sampling
        dit = folder.dit if dit is None else dit
        vae = folder.vae if vae is None else vae
    if isinstance(sampler, str):
        sampler = get_sampler(sampler, **sampler_options)
    elif sampler_options:
        raise ValueError(f"sampler options {sorted(sampler_options)} need a sampler name, not a Sampler object")
    return InContextPipeline(
        load_encoder(vae, device=device, dtype=dtype, seed=seed),
        load_denoiser(dit, device=device, dtype=dtype, seed=seed),
        sampler,
        **recommended,
    )

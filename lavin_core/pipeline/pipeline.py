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

import contextlib
import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.data.images import check_size, decode_side, processing_shape, resize, to_pixels
from lavin_core.data.latents import LatentCache
from lavin_core.devices import autocast_dtype, check_precision
from lavin_core.errors import LavinError
from lavin_core.flow import randn_like
from lavin_core.interfaces import Denoiser, Encoder, Sampler, StepCallback, Task
from lavin_core.pipeline.adaptation import adapted
from lavin_core.pipeline.context_copy import apply_context_copy
from lavin_core.pipeline.copy_fits import CopyFits
from lavin_core.pipeline.ensemble import combine_samples
from lavin_core.pipeline.inputs import build_context
from lavin_core.pipeline.output import InContextOutput
from lavin_core.pipeline.workers import cpu_workers, run_all
from lavin_core.pretrained import folders
from lavin_core.pretrained.loading import load_denoiser, load_encoder
from lavin_core.samplers import EulerSampler, get_sampler, null_context
from lavin_core.samplers.options import OFFICIAL_GUIDANCE, SamplingOptions, model_defaults
from lavin_core.seeds import mix_seed
from lavin_core.stvae.guide import answer_shape, guide_frames

#: A processing size this many times larger or smaller than the model's own gets a warning.
FAR_FROM_TRAINED = 2.0


def _module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    if tensor is None:
        return torch.device("cpu"), torch.float32
    return tensor.device, tensor.dtype


def check_sampling(guidance_scale: float | None, temperature: float | None) -> None:
    """One-line errors for a CFG scale or noise temperature that is not a finite number >= 0."""
    SamplingOptions(guidance_scale=guidance_scale, temperature=temperature)


@attrs.frozen
class _Job:
    """One (context, sample) row of a sampling batch."""

    context: int
    sample: int


class InContextPipeline:
    """Encoder + Denoiser + Sampler: generates the target of a query from a few example pairs.

    Device and dtype follow the models: inputs go to the encoder's, latents to the denoiser's.
    ``pipeline.to(device, dtype)`` moves both. ``defaults`` (a ``SamplingOptions``) fills every
    option a call leaves out: the official settings (CFG 1.5, temperature 1, one sample, 4 pairs,
    each query at its own size), or what a model folder's ``model_index.json`` recommends
    (lavin-tiny: CFG 2.5, 6 samples, queries processed at 64 px). ``guidance_scale`` and
    ``temperature`` override those two defaults.

    ``precision`` is the arithmetic of the J-DiT while sampling: ``fp32``, ``bf16`` (autocast:
    matmuls and attention in bfloat16, the latents and the sampler's updates in the models' own
    dtype) or ``auto`` (bf16 where the device multiplies bf16 in hardware, a CUDA GPU or a CPU with
    AVX-512 BF16 or AMX, else fp32; ``devices.native_bf16``). The ST-VAE always runs in the models'
    own dtype: bf16 convolutions measured 0.53x the float32 encoder's speed on an AVX-512 BF16 CPU
    and moved decoded pixels by up to 0.04, while the J-DiT is where the time goes.
    """

    def __init__(self, encoder: Encoder, denoiser: Denoiser, sampler: Sampler | None = None, *,
                 defaults: SamplingOptions | None = None, guidance_scale: float | None = None,
                 temperature: float | None = None, precision: str = "fp32"):
        chosen = SamplingOptions(guidance_scale=guidance_scale, temperature=temperature)
        self.defaults = model_defaults(chosen.merged_over(defaults or SamplingOptions()))
        if encoder.latent_channels != denoiser.in_channels:
            raise ValueError(
                f"the encoder makes {encoder.latent_channels}-channel latents but the denoiser takes "
                f"{denoiser.in_channels}; pair models built for each other"
            )
        self.encoder, self.denoiser = encoder, denoiser
        self.sampler = sampler if sampler is not None else EulerSampler()
        self.precision = precision
        #: The model folder it was loaded from (``load_pipeline``), whose index gave ``defaults``.
        self.folder: folders.ModelFolder | None = None

    @property
    def max_pairs(self) -> int | None:
        """The most example pairs one training context held, when the model folder says."""
        return None if self.folder is None else self.folder.max_pairs

    @property
    def guidance_scale(self) -> float:
        """The CFG scale a call uses when it names none."""
        return self.defaults.guidance_scale

    @property
    def temperature(self) -> float:
        """The starting-noise temperature a call uses when it names none."""
        return self.defaults.temperature

    @property
    def device(self) -> torch.device:
        return _module_device_dtype(self.denoiser)[0]

    @property
    def dtype(self) -> torch.dtype:
        return _module_device_dtype(self.denoiser)[1]

    @property
    def precision(self) -> str:
        """The J-DiT's arithmetic while sampling: ``auto``, ``fp32`` or ``bf16`` (see the class docstring)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = check_precision(value)

    @property
    def sampling_dtype(self) -> torch.dtype:
        """The dtype the J-DiT's matmuls run in: ``precision`` resolved on the pipeline's device."""
        return autocast_dtype(self.precision, self.device) or self.dtype

    @property
    def size_multiple(self) -> int:
        """Heights and widths the models take are multiples of this (VAE stride x patch size)."""
        return self.encoder.spatial_compression * self.denoiser.patch_size

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> InContextPipeline:
        """Move (and cast) both models; returns ``self``."""
        self.encoder.to(device=device, dtype=dtype)
        self.denoiser.to(device=device, dtype=dtype)
        return self

    # -- options ----------------------------------------------------------------------------

    def resolve(self, options: SamplingOptions, *, combining: bool = False) -> SamplingOptions:
        """``options`` with the model's defaults filled in, the step count checked against the
        schedule. The model's recommended number of samples applies only when ``combining`` (a task
        combines them); otherwise one sample unless ``options`` asks for more."""
        if options.num_samples is None and not combining:
            options = attrs.evolve(options, num_samples=1)
        resolved = options.merged_over(self.defaults)
        self.sampler_for(resolved).timesteps(resolved.num_steps)  # a grid the schedule lacks fails here
        if options.processing_size:
            self._warn_if_far(options.processing_size, f"{options.processing_size} px")
        return resolved

    def _warn_if_far(self, side: int, what: str) -> None:
        """One line when ``side`` (the longer side processed) is far from the size the model was trained at."""
        trained = self.defaults.processing_size
        if trained and not 1 / FAR_FROM_TRAINED <= side / trained <= FAR_FROM_TRAINED:
            # stacklevel 1: one location, so the same line is shown once however many calls resolve options
            warnings.warn(f"processing at {what}, far from the {trained} px this model was trained at; "
                          f"expect a poor prediction")

    def sampler_for(self, options: SamplingOptions) -> Sampler:
        """The pipeline's sampler, on ``options.schedule`` when one is named."""
        if options.schedule is None:
            return self.sampler
        if not attrs.has(type(self.sampler)) or not hasattr(self.sampler, "schedule"):
            raise ValueError(f"schedule={options.schedule!r} needs a sampler with a schedule; "
                             f"{type(self.sampler).__name__} has none")
        return attrs.evolve(self.sampler, schedule=options.schedule)

    def step_count(self, options: SamplingOptions | None = None) -> int:
        """The sampler steps a call with ``options`` takes (their schedule and step count, else the defaults)."""
        options = self.defaults if options is None else options.merged_over(self.defaults)
        return self.sampler_for(options).step_count(options.num_steps)

    def processing_shape(self, height: int, width: int, processing_size: int) -> tuple[int, int]:
        """The ``(height, width)`` a query of this size is processed at (see ``SamplingOptions``)."""
        return processing_shape(height, width, processing_size, self.size_multiple)

    # -- encoding ---------------------------------------------------------------------------

    def _encode_all(self, images: list[Tensor], batch_size: int | None = None) -> list[Tensor]:
        """Latents ``(C, T', h, w)`` of each pixel tensor; tensors of one shape are encoded in batches."""
        device, dtype = _module_device_dtype(self.encoder)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, pixels in enumerate(images):
            groups.setdefault(tuple(pixels.shape), []).append(index)
        out: list[Tensor | None] = [None] * len(images)
        for indices in groups.values():
            for chunk in _chunks(indices, batch_size):
                batch = torch.stack([images[i] for i in chunk]).to(device=device, dtype=dtype)
                for i, latents in zip(chunk, self.encoder.encode(batch)):
                    out[i] = latents
        return out  # type: ignore[return-value]

    def encode_contexts(
        self, contexts: Sequence[TaskContext], *, latent_cache: LatentCache | None = None,
        batch_size: int | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """For each context: ``(cond, query)`` latents, ``(C, T_cond, h, w)`` and ``(C, T_q, h, w)``.

        Pair images found in ``latent_cache`` are read from it; all the others are encoded, each once.
        """
        frames: list[list[Tensor | None]] = []
        missing: list[Tensor] = []
        where: list[tuple[int, int]] = []
        for c, context in enumerate(contexts):
            what = f"the query of context {c}" if len(contexts) > 1 else "the query"
            check_size(context.query, self.size_multiple, what)
            row: list[Tensor | None] = []
            for f, pixels in enumerate(context.frames()):
                is_query = f == len(context.frames()) - 1
                if not torch.isfinite(pixels).all():
                    name = what if is_query else f"example pair {f // 2} ({'input' if f % 2 == 0 else 'target'})"
                    raise LavinError(f"{name} of context {c} holds NaN or infinite pixels; pass finite values in [-1, 1]")
                cached = None if latent_cache is None or is_query else latent_cache.get(pixels)
                row.append(cached)
                if cached is None:
                    missing.append(pixels)
                    where.append((c, f))
            frames.append(row)
        for (c, f), latents in zip(where, self._encode_all(missing, batch_size)):
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
        task: Task | None = None,
        num_steps: int | None = None,
        schedule: str | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        num_samples: int | None = None,
        processing_size: int | None = None,
        seed: int | None = None,
        adapt_steps: int | None = None,
        adapt_lr: float | None = None,
        context_copy: bool | None = None,
        options: SamplingOptions | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        progress: bool | str = True,
        callback: StepCallback | None = None,
        latent_cache: LatentCache | None = None,
        output_type: Literal["pixels", "latent"] = "pixels",
    ) -> InContextOutput:
        """Predict the target of each context's query.

        ``context``: one ``TaskContext`` or a list (batched queries); or pass ``pairs`` (at least
        one) and ``query`` in any image form (see ``build_context``). The sampling settings come as
        keywords or as one ``options`` value (keywords win); each left out takes the pipeline's
        ``defaults`` (see ``SamplingOptions``): ``num_steps`` and ``schedule`` (the sampler's grid),
        ``guidance_scale`` (1 = no null pass), ``temperature`` (0 = one deterministic answer),
        ``processing_size`` (queries are resized so that their longer side is this, and predictions
        resized back to each query's size; 0 keeps every query as it is), ``seed`` (when no
        ``generator`` is given), ``adapt_steps`` and ``adapt_lr`` (test-time adaptation: before a
        context is answered, the J-DiT is fine-tuned that many steps on its pairs, each held out
        in turn, and restored after; contexts with one pair are answered as they are, with a
        warning; see ``lavin_core.pipeline.adaptation``), ``context_copy`` (each sample keeps the
        query's pixels where a classifier fitted on the context's pairs says the pairs keep their
        input's; see ``lavin_core.pipeline.context_copy``).

        ``num_samples`` draws that many samples per query and combines them into one prediction:
        by ``task.combine`` in answer space when a ``task`` is given (its default count is the
        model's recommended ensemble), else by the pixel mean (default one sample). Each context is
        encoded once whatever the number of samples; every sample is in ``output.samples``.
        Noise is drawn from ``generator`` sample by sample, context by context, in order, on the
        generator's device: a seed gives the same result on any device and in any batching, and
        the first samples of a K-sample call are exactly those of a one-sample call.
        ``batch_size`` caps the rows encoded, sampled and decoded at once (default: all).
        ``progress``: a tqdm bar over all steps of all batches (a string labels it).
        ``callback(step, t, z)`` runs after every step of every batch. ``output_type="latent"``
        skips decoding.
        """
        if output_type not in ("pixels", "latent"):
            raise ValueError(f"output_type must be 'pixels' or 'latent', got {output_type!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        given = SamplingOptions(num_steps=num_steps, schedule=schedule, guidance_scale=guidance_scale,
                                temperature=temperature, num_samples=num_samples,
                                processing_size=processing_size, seed=seed, adapt_steps=adapt_steps,
                                adapt_lr=adapt_lr, context_copy=context_copy)
        opts = self.resolve(given.merged_over(options or SamplingOptions()), combining=task is not None)
        if generator is None and opts.seed is not None:
            generator = torch.Generator().manual_seed(opts.seed)
        contexts, sizes = self._contexts(context, pairs, query, opts.processing_size)
        if opts.processing_size == 0:
            for height, width in set(sizes):
                self._warn_if_far(max(height, width), f"the query's own size, {width}x{height} (processing size 0)")
        encoded = self.encode_contexts(contexts, latent_cache=latent_cache, batch_size=batch_size)
        jobs = [_Job(c, k) for k in range(opts.num_samples) for c in range(len(contexts))]
        noises = self._noises(contexts, jobs, generator, opts.temperature)
        sampler = self.sampler_for(opts)
        adapting = self._adapting(contexts, opts)
        # drawn after the noises, so that adapting leaves every sample's noise as it was
        adapt_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device)) \
            if adapting and generator is not None else 0

        # The context copy's fits read the pairs alone: worker threads run them while the J-DiT
        # samples (copy_fits.py), from a seed of their own drawn here (the ODE samplers draw
        # nothing: it is the seed a draw after sampling would give).
        copying = opts.context_copy and output_type == "pixels"
        copy_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device)) \
            if copying and generator is not None else 0
        with CopyFits(contexts, copy_seed) if copying else contextlib.nullcontext() as fits:
            # Rows of one shape sample together, ``batch_size`` at a time; results go back to their places.
            # Adapted weights are one context's own, so then each context samples alone.
            groups: dict[tuple, list[int]] = {}
            for row, job in enumerate(jobs):
                cond, query_latents = encoded[job.context]
                key = (tuple(cond.shape), tuple(query_latents.shape), tuple(noises[row].shape))
                groups.setdefault(key + ((job.context,) if job.context in adapting else ()), []).append(row)
            steps = sampler.step_count(opts.num_steps)
            latents: list[Tensor | None] = [None] * len(jobs)
            chunk_count = sum(len(_chunks(rows, batch_size)) for rows in groups.values())
            with tqdm(total=steps * chunk_count, disable=not progress, unit="step", leave=False,
                      desc=progress if isinstance(progress, str) else "lavin") as bar:
                def on_step(step: int, t: float, z: Tensor) -> None:
                    bar.update()
                    if callback is not None:
                        callback(step, t, z)

                autocast = autocast_dtype(self.precision, self.device)

                def sample_rows(rows: list[int]) -> None:
                    cond = torch.stack([encoded[jobs[r].context][0] for r in rows])
                    null = null_context(torch.stack([encoded[jobs[r].context][1] for r in rows]))
                    # grad mode and autocast are per thread: set here, for the workers too
                    with torch.no_grad(), torch.autocast(self.device.type, dtype=autocast or torch.float32,
                                                         enabled=autocast is not None):
                        sampled = sampler.sample(
                            self.denoiser, torch.stack([noises[r] for r in rows]), cond, null_cond=null,
                            guidance_scale=opts.guidance_scale, num_steps=opts.num_steps, generator=generator,
                            callback=on_step, progress=False,
                        ).to(self.dtype)
                    if not torch.isfinite(sampled).all():
                        raise LavinError(
                            "the sampled latents hold NaN or infinite values: the model weights or the inputs "
                            f"are not finite (guidance {opts.guidance_scale}, temperature {opts.temperature})"
                        )
                    for r, z in zip(rows, sampled):
                        latents[r] = z

                shared: list[list[int]] = []  # chunks that sample with the loaded weights, in any order
                for group in groups.values():
                    context = jobs[group[0]].context
                    if context in adapting:
                        with self._adapted(encoded[context], noises[group[0]], opts, mix_seed(adapt_seed, context),
                                           autocast):
                            for rows in _chunks(group, batch_size):
                                sample_rows(rows)
                    else:
                        shared.extend(_chunks(group, batch_size))
                # on a CPU, on two threads (workers.py): the same answers, sooner
                run_all(sample_rows, shared, workers=cpu_workers(self.denoiser, self.device,
                                                                 ordered=callback is not None))
            per_context = [[latents[r] for r, job in enumerate(jobs) if job.context == c] for c in range(len(contexts))]
            stacked = tuple(z[0] if len(z) == 1 else torch.stack(z) for z in per_context)
            if output_type == "latent":
                return InContextOutput(predictions=(), latents=stacked)
            guides = [contexts[job.context].query for job in jobs] if self.encoder.takes_guide else None
            pixels = self.decode(latents, batch_size=batch_size, guides=guides)  # type: ignore[arg-type]
            if fits is not None:
                pixels = self._copied(jobs, pixels, fits)
            samples = tuple(
                tuple(resize(pixels[r], sizes[c]) for r, job in enumerate(jobs) if job.context == c)
                for c in range(len(contexts))
            )
            predictions = tuple(
                resize(combine_samples(task, [pixels[r] for r, job in enumerate(jobs) if job.context == c]), sizes[c])
                for c in range(len(contexts))
            )
            return InContextOutput(predictions=predictions, latents=stacked, samples=samples)

    @staticmethod
    def _copied(jobs: Sequence[_Job], pixels: list[Tensor], fits: CopyFits) -> list[Tensor]:
        """``pixels`` (one per job) blended towards their context's query where its fit says so."""
        out = list(pixels)
        for c, (query, fitted) in enumerate(fits.result()):
            rows = [r for r, job in enumerate(jobs) if job.context == c]
            for r, sample in zip(rows, apply_context_copy([pixels[r] for r in rows], query, fitted)):
                out[r] = sample
        return out

    def _adapting(self, contexts: Sequence[TaskContext], opts: SamplingOptions) -> set[int]:
        """The contexts this call adapts the J-DiT to (``opts.adapt_steps``): those with the two pairs
        it needs, one to hold out and one to read; the others are answered as they are, with a warning."""
        if not opts.adapt_steps:
            return set()
        short = [index for index, context in enumerate(contexts) if len(context.pairs) < 2]
        if short:
            which = "the context has" if len(contexts) == 1 else f"{len(short)} of {len(contexts)} contexts have"
            warnings.warn(f"adapt_steps={opts.adapt_steps} holds out one example pair at a time, but {which} a single "
                          f"pair: answered without adaptation (pass 2 or more pairs to adapt)")
        return set(range(len(contexts))) - set(short)

    def _adapted(self, encoded: tuple[Tensor, Tensor], noise: Tensor, opts: SamplingOptions, seed: int,
                 autocast: torch.dtype | None):
        """``adaptation.adapted`` of the J-DiT to one context's latents ``(cond, query)``."""
        cond, query = encoded
        return adapted(self.denoiser, cond, query_frames=query.shape[1], target_frames=noise.shape[1],
                       steps=opts.adapt_steps, lr=opts.adapt_lr, autocast=autocast,
                       generator=torch.Generator().manual_seed(seed))

    def _noises(self, contexts: Sequence[TaskContext], jobs: Sequence[_Job], generator: torch.Generator | None,
                temperature: float) -> list[Tensor]:
        device, dtype = self.device, self.dtype
        shapes = [self.encoder.latent_shape((1, *context.target_shape))[1:] for context in contexts]
        noises = []
        for job in jobs:
            noise = randn_like(torch.empty(shapes[job.context], device=device, dtype=dtype), generator=generator)
            noises.append(noise if temperature == 1 else noise * temperature)
        return noises

    @torch.no_grad()
    def reconstruct(self, images: Sequence[Tensor], queries: Sequence[Tensor] | None = None) -> list[Tensor]:
        """Each pixel tensor ``(3, T, H, W)`` through the encoder and back: the best any prediction can be.

        A prediction is decoded from latents, so where even the true target loses detail in this
        round trip, no denoiser can do better; ``lavin bench`` reports it as ``vae_ceiling``.
        ``queries``: each image's query, the guide of a query-guided decoder (ignored by others).
        """
        guides = list(queries) if queries is not None and self.encoder.takes_guide else None
        return self.decode(self._encode_all(list(images)), guides=guides)

    def decode(self, latents: Sequence[Tensor], *, batch_size: int | None = None,
               guides: Sequence[Tensor] | None = None) -> list[Tensor]:
        """Float32 pixels ``(3, T, H, W)`` in [-1, 1] for sampled latents ``(C, T', h, w)``, decoded in
        batches of one shape (at most ``batch_size`` at a time).

        ``guides``: per latent, its query's pixels ``(3, T_q, H, W)`` for a query-guided decoder
        (``Encoder.takes_guide``; ``guide_frames`` fits them to the answer's frames and size).
        """
        if guides is not None and len(guides) != len(latents):
            raise ValueError(f"got {len(guides)} guides for {len(latents)} latents; pass one query per latent")
        device, dtype = _module_device_dtype(self.encoder)
        sc, tc = self.encoder.spatial_compression, self.encoder.temporal_compression
        groups: dict[tuple, list[int]] = {}
        for index, z in enumerate(latents):
            key = tuple(z.shape) + (() if guides is None else tuple(guides[index].shape))
            groups.setdefault(key, []).append(index)
        out: list[Tensor | None] = [None] * len(latents)

        def decode_chunk(chunk: list[int]) -> None:
            batch = torch.stack([latents[i] for i in chunk]).to(device=device, dtype=dtype)
            kwargs = {}
            if guides is not None:
                frames, size = answer_shape(batch, sc, tc)
                queries = torch.stack([guides[i] for i in chunk]).to(device=device, dtype=dtype)
                kwargs["guide"] = guide_frames(queries, frames, size)
            with torch.set_grad_enabled(grad):  # the caller's grad mode, in the workers too
                decoded = self.encoder.decode(batch, **kwargs)
            for i, pixels in zip(chunk, decoded):
                out[i] = pixels.float().clamp(-1.0, 1.0)

        grad = torch.is_grad_enabled()
        chunks = [chunk for indices in groups.values() for chunk in _chunks(indices, batch_size)]
        run_all(decode_chunk, chunks, workers=cpu_workers(self.encoder, device))
        return out  # type: ignore[return-value]

    def _contexts(self, context, pairs, query, processing_size: int) -> tuple[list[TaskContext], list[tuple[int, int]]]:
        """The contexts to sample, resized to the processing size, and each query's own ``(H, W)``."""
        if context is not None:
            if pairs is not None or query is not None:
                raise ValueError("pass either a context or pairs= and query=, not both")
            contexts = [context] if isinstance(context, TaskContext) else list(context)
        elif query is not None:
            if not pairs:
                raise ValueError("pairs= is empty: the model learns the task from at least one (input, target) "
                                 "example pair; without pairs it would only see the query")
            # a file is decoded within images.decode_side of the processing size: a huge one is read scaled down
            query = to_pixels(query, what="query", max_side=decode_side(processing_size))
            height, width = query.shape[-2:]
            size = self.processing_shape(height, width, processing_size)
            built = build_context(pairs, query, size=size)
            return [built], [(height, width)]
        else:
            raise ValueError("nothing to predict: pass a TaskContext (or a list of them), or pairs= and query=")
        if not contexts:
            raise ValueError("the list of contexts is empty")
        sizes = []
        for index, item in enumerate(contexts):
            if not isinstance(item, TaskContext):
                raise TypeError(f"contexts[{index}] must be a TaskContext, got {type(item).__name__}")
            if not item.pairs:
                raise ValueError(f"context {index} has no example pairs: the model learns the task from at least one")
            sizes.append(tuple(item.query.shape[-2:]))
        processed = [_resize_context(c, self.processing_shape(*size, processing_size)) for c, size in zip(contexts, sizes)]
        return processed, sizes


def _resize_context(context: TaskContext, size: tuple[int, int]) -> TaskContext:
    """``context`` with every frame resized to ``size`` (the same object when it is already that size)."""
    if tuple(context.query.shape[-2:]) == tuple(size) and all(
            tuple(p.input.shape[-2:]) == tuple(size) and tuple(p.target.shape[-2:]) == tuple(size) for p in context.pairs):
        return context
    pairs = [ExamplePair(input=resize(p.input, size), target=resize(p.target, size)) for p in context.pairs]
    return attrs.evolve(context, pairs=pairs, query=resize(context.query, size))


def _chunks(items: list[int], size: int | None) -> list[list[int]]:
    if size is None:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def load_pipeline(
    model: str | os.PathLike | None = None,
    *,
    dit: str | Denoiser | None = None,
    vae: str | Encoder | None = None,
    sampler: str | Sampler = "euler",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    precision: str | None = None,
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
    ``precision`` (``auto``, ``fp32``, ``bf16``): the J-DiT's arithmetic while sampling (see
    ``InContextPipeline``); default: what the model folder recommends, else ``fp32``.
    The pipeline's ``defaults`` are the model's recommended sampling settings (its
    ``model_index.json``: steps, CFG scale, temperature, ensemble size, processing size, pairs) when both
    parts are the model's own, else the official ones (CFG 1.5, one sample, queries at their own size).
    """
    if model is None and dit is None and vae is None:
        model = folders.DEFAULT_MODEL
    if model is None and (dit is None or vae is None):
        missing = "vae" if vae is None else "dit"
        raise ValueError(f"{missing}= is missing: pass both dit= and vae=, or a model name such as "
                         f"{folders.DEFAULT_MODEL!r}")
    if precision is not None:
        check_precision(precision)
    recommended, folder = None, None
    if model is not None:
        folder = folders.get_model(model)
        if dit is None and vae is None:
            recommended = folder.recommended
            precision = precision or folder.precision
        dit = folder.dit if dit is None else dit
        vae = folder.vae if vae is None else vae
    if isinstance(sampler, str):
        sampler = get_sampler(sampler, **sampler_options)
    elif sampler_options:
        raise ValueError(f"sampler options {sorted(sampler_options)} need a sampler name, not a Sampler object")
    pipe = InContextPipeline(
        load_encoder(vae, device=device, dtype=dtype, seed=seed),
        load_denoiser(dit, device=device, dtype=dtype, seed=seed),
        sampler,
        defaults=recommended,
        precision=precision or "fp32",
    )
    pipe.folder = folder if model is not None else None
    return pipe

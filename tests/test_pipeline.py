"""The in-context pipeline, with stand-in models whose answers are known exactly, and the real tiny ones."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.data.images import ImageError, to_pixels
from lavin_core.errors import LavinError
from lavin_core.interfaces import Denoiser, Encoder
from lavin_core.pipeline import InContextPipeline, LatentCache, MemoryLatentCache, build_context, pixel_key
from lavin_core.samplers import AdamsBashforthSampler, EulerSampler
from lavin_core.samplers.options import SamplingOptions


def rel(a: Tensor, b: Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


class UnshuffleEncoder(Encoder):
    """An exactly invertible stand-in encoder: 2x2 pixel-unshuffle per frame, no time compression."""

    temporal_compression, spatial_compression, latent_channels = 1, 2, 12

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))  # gives the module a device and dtype
        self.batches: list[int] = []

    def encode(self, pixels, *, generator=None):
        self.batches.append(pixels.shape[0])
        b, c, t, h, w = pixels.shape
        frames = pixels.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        latents = F.pixel_unshuffle(frames, 2)
        return latents.reshape(b, t, 12, h // 2, w // 2).permute(0, 2, 1, 3, 4) + self.anchor

    def decode(self, latents):
        b, c, t, h, w = latents.shape
        frames = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        pixels = F.pixel_shuffle(frames, 2)
        return pixels.reshape(b, t, 3, h * 2, w * 2).permute(0, 2, 1, 3, 4)


class InContextOracle(Denoiser):
    """Knows the task exactly: target = query + (tgt_1 - in_1); for the null context ``[0, query]``: the query.

    It returns the velocity of the straight path to that target, ``(z_t - target) / t``, along
    which Euler is exact, so the pipeline's output is known in closed form.
    """

    in_channels, patch_size = 12, 2

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, z_t, t, cond):
        frames = z_t.shape[2]
        query = cond[:, :, -frames:]
        if cond.shape[2] == frames + 1:  # the null context
            target = query
        else:
            target = query + cond[:, :, frames : 2 * frames] - cond[:, :, :frames]
        return self.weight * (z_t - target) / t.view(-1, 1, 1, 1, 1)


class MixingDenoiser(Denoiser):
    """A velocity that depends on the noise and the context, so seeds and batching show."""

    in_channels, patch_size = 12, 2

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv3d(12, 12, 1)

    def forward(self, z_t, t, cond):
        return self.mix(z_t) * t.view(-1, 1, 1, 1, 1) + cond.mean(dim=2, keepdim=True)


def small(shape, seed, scale=0.3):
    """Random pixels in [-scale, scale] (so sums of a few stay inside [-1, 1])."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) * 2 - 1) * scale


def make_context(seed=0, size=(8, 8), frames=1, pairs=2):
    shape = (3, frames, *size)
    return TaskContext(
        task="offset",
        pairs=[ExamplePair(input=small(shape, seed + 2 * i), target=small(shape, seed + 2 * i + 1)) for i in range(pairs)],
        query=small(shape, seed + 100),
    )


def expected(context: TaskContext, scale: float = 1.0) -> Tensor:
    first = context.pairs[0]
    return (context.query + scale * (first.target - first.input)).clamp(-1, 1)  # as pixels are


# ---------------------------------------------------------------------------------------------
# correctness with the oracle


def test_pipeline_predicts_the_oracles_answer_without_guidance():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    context = make_context()
    out = pipe(context, guidance_scale=1.0, progress=False)
    assert out.prediction.shape == (1, 3, 1, 8, 8)
    assert rel(out.predictions[0], expected(context)) < 1e-5


@pytest.mark.parametrize("scale", [0.0, 1.5, 2.0])
def test_guidance_extrapolates_from_the_null_context(scale):
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    context = make_context(seed=3)
    out = pipe(context, guidance_scale=scale, progress=False)
    # The oracle's null answer is the query, so CFG gives query + s * (tgt_1 - in_1).
    assert rel(out.predictions[0], expected(context, scale)) < 1e-5


def test_a_call_without_a_scale_uses_the_pipelines_default():
    context = make_context(seed=4)
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler(), guidance_scale=2.0)
    assert rel(pipe(context, progress=False).predictions[0], expected(context, 2.0)) < 1e-5
    assert rel(pipe(context, guidance_scale=1.0, progress=False).predictions[0], expected(context)) < 1e-5
    assert InContextPipeline(UnshuffleEncoder(), InContextOracle()).guidance_scale == 1.5  # the official one
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0 .*got -1"):
        InContextPipeline(UnshuffleEncoder(), InContextOracle(), guidance_scale=-1)


class StillDenoiser(Denoiser):
    """Velocity zero everywhere: the sampler returns its starting noise unchanged."""

    in_channels, patch_size = 12, 2

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z_t, t, cond):
        return torch.zeros_like(z_t) + self.anchor


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.7])
def test_temperature_scales_the_starting_noise(temperature):
    context = make_context(seed=5)

    def start(pipe, **options):
        out = pipe(context, generator=torch.Generator().manual_seed(3), output_type="latent", progress=False, **options)
        return out.latents[0]

    plain = InContextPipeline(UnshuffleEncoder(), StillDenoiser(), EulerSampler())
    assert plain.temperature == 1.0
    noise = start(plain)
    assert noise.std() > 0.5  # standard normal noise came back untouched
    torch.testing.assert_close(start(plain, temperature=temperature), noise * temperature)
    warm = InContextPipeline(UnshuffleEncoder(), StillDenoiser(), EulerSampler(), temperature=temperature)
    torch.testing.assert_close(start(warm), noise * temperature)  # the pipeline's default
    torch.testing.assert_close(start(warm, temperature=1.0), noise)  # a call's value wins
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0 .*got -0.5"):
        InContextPipeline(UnshuffleEncoder(), StillDenoiser(), temperature=-0.5)


def test_temperature_does_not_move_an_exact_answer():
    # the oracle's straight paths end on the answer wherever they start
    context = make_context(seed=6)
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    for temperature in (0.0, 0.3):
        out = pipe(context, guidance_scale=1.0, temperature=temperature, progress=False)
        assert rel(out.predictions[0], expected(context)) < 1e-5


def test_clips_go_through_the_pipeline():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), AdamsBashforthSampler(order=1, schedule="uniform"))
    context = make_context(frames=5, pairs=1)
    out = pipe(context, num_steps=4, guidance_scale=1.0, progress=False)
    assert out.predictions[0].shape == (3, 5, 8, 8)
    assert rel(out.predictions[0], expected(context)) < 1e-5
    frames = out.images()[0]
    assert isinstance(frames, list) and len(frames) == 5
    assert out.arrays()[0].shape == (5, 8, 8, 3)


def test_batched_queries_of_mixed_shapes_come_back_in_order():
    encoder = UnshuffleEncoder()
    pipe = InContextPipeline(encoder, InContextOracle(), EulerSampler())
    contexts = [make_context(0), make_context(10, size=(4, 12)), make_context(20), make_context(30, pairs=1)]
    out = pipe(contexts, guidance_scale=1.5, progress=False)
    for context, prediction in zip(contexts, out.predictions):
        assert prediction.shape == context.query.shape
        assert rel(prediction, expected(context, 1.5)) < 1e-5
    with pytest.raises(ValueError, match="different shapes"):
        _ = out.prediction
    # Inputs and queries of one shape are encoded together, not one by one.
    assert max(encoder.batches) >= 3


def test_latent_cache_is_read_instead_of_encoding_pairs():
    encoder = UnshuffleEncoder()
    pipe = InContextPipeline(encoder, InContextOracle(), EulerSampler())
    context = make_context(pairs=2)
    cache = MemoryLatentCache()
    assert isinstance(cache, LatentCache)
    for pair in context.pairs:
        for pixels in (pair.input, pair.target):
            cache.put(pixels, encoder.encode(pixels[None])[0])
    # Poison one cached latent: if the pipeline reads the cache, the answer moves by exactly that.
    first_target = context.pairs[0].target
    poisoned = encoder.encode(first_target[None])[0] + 0.1
    cache.put(first_target, poisoned)
    assert len(cache) == 4
    encoder.batches.clear()
    out = pipe(context, guidance_scale=1.0, latent_cache=cache, progress=False)
    assert encoder.batches == [1]  # only the query was encoded
    shifted = encoder.decode(poisoned[None])[0] - first_target
    assert rel(out.predictions[0], expected(context) + shifted) < 1e-5
    assert pixel_key(first_target) == pixel_key(first_target.clone().double())


def test_same_seed_same_output_in_any_batching():
    torch.manual_seed(0)
    pipe = InContextPipeline(UnshuffleEncoder(), MixingDenoiser(), EulerSampler())
    a, b = make_context(0), make_context(7)
    first = pipe([a, b], generator=torch.Generator().manual_seed(5), progress=False)
    again = pipe([a, b], generator=torch.Generator().manual_seed(5), progress=False)
    other = pipe([a, b], generator=torch.Generator().manual_seed(6), progress=False)
    alone = pipe(a, generator=torch.Generator().manual_seed(5), progress=False)
    assert torch.equal(first.latents[0], again.latents[0]) and torch.equal(first.latents[1], again.latents[1])
    assert not torch.equal(first.latents[0], other.latents[0])
    assert rel(alone.latents[0], first.latents[0]) < 1e-5


def test_callback_progress_and_latent_output():
    pipe = InContextPipeline(UnshuffleEncoder(), MixingDenoiser(), EulerSampler(schedule="uniform"))
    steps = []
    out = pipe(make_context(), num_steps=3, callback=lambda i, t, z: steps.append((i, t, tuple(z.shape))),
               output_type="latent", progress=True)
    assert steps == [(0, pytest.approx(2 / 3), (1, 12, 1, 4, 4)), (1, pytest.approx(1 / 3), (1, 12, 1, 4, 4)), (2, 0.0, (1, 12, 1, 4, 4))]
    assert out.predictions == () and out.latents[0].shape == (12, 1, 4, 4)
    with pytest.raises(ValueError, match="output_type='latent'"):
        _ = out.prediction


def test_step_count_is_the_steps_a_call_takes():
    """``pipe.step_count(options)``: what bench, demo and the app record, the steps the call really takes."""
    pipe = InContextPipeline(UnshuffleEncoder(), MixingDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=5))
    for options, expected in ((None, 5), (SamplingOptions(), 5), (SamplingOptions(num_steps=3), 3),
                              (SamplingOptions(num_steps=29, schedule="official"), 29)):
        steps = []
        pipe(make_context(), options=options, callback=lambda i, t, z: steps.append(i), output_type="latent",
             progress=False)
        assert pipe.step_count(options) == len(steps) == expected


def test_outputs_as_pil_and_arrays():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    out = pipe(make_context(), guidance_scale=1.0, progress=False)
    image = out.images()[0]
    assert isinstance(image, Image.Image) and image.size == (8, 8)
    array = out.arrays()[0]
    assert array.shape == (8, 8, 3) and array.dtype == np.uint8
    assert np.array_equal(np.asarray(image), array)


def test_raw_pairs_and_query_in_any_form(tmp_path):
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    context = make_context()
    pil_query = Image.fromarray(((context.query[:, 0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
    pil_query.save(tmp_path / "q.png")
    pair = context.pairs[0]
    out = pipe(pairs=[(pair.input, pair.target)], query=str(tmp_path / "q.png"), guidance_scale=1.0, progress=False)
    assert rel(out.predictions[0], to_pixels(pil_query) + pair.target - pair.input) < 1e-5
    # Pairs of another size are resized to the query's.
    built = build_context([(np.zeros((16, 16, 3), np.uint8), np.ones((16, 16, 3), np.float32))], pil_query)
    assert built.pairs[0].input.shape == (3, 1, 8, 8) and built.task == "custom"


def test_bad_calls_get_clear_errors():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    with pytest.raises(ImageError, match="multiples of 4; resize it to 8x8"):
        pipe(make_context(size=(6, 6)), progress=False)
    with pytest.raises(ValueError, match="nothing to predict"):
        pipe(progress=False)
    with pytest.raises(ValueError, match="official schedule exists for 19, 29, 39 steps"):
        pipe(make_context(), num_steps=7, schedule="official", progress=False)
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        pipe(make_context(), guidance_scale=-1.0, progress=False)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        pipe(make_context(), temperature=-1.0, progress=False)
    with pytest.raises(TypeError, match=r"contexts\[1\] must be a TaskContext"):
        pipe([make_context(), "query.png"], progress=False)


def test_to_moves_and_casts_both_models():
    pipe = InContextPipeline(UnshuffleEncoder(), MixingDenoiser(), EulerSampler())
    assert pipe.to(dtype=torch.float64) is pipe
    assert pipe.dtype == torch.float64 and pipe.encoder.anchor.dtype == torch.float64
    assert pipe.device == torch.device("cpu")
    out = pipe(make_context(), progress=False)
    assert out.latents[0].dtype == torch.float64 and out.predictions[0].dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# the real tiny models


def _tiny_models(images: Tensor):
    """A random tiny ST-VAE whose latent scale makes ``images``' latents unit-variance (as the official
    scale does for real images), and a random tiny J-DiT."""
    import attrs

    jdit = pytest.importorskip("lavin_core.jdit")
    stvae = pytest.importorskip("lavin_core.stvae")
    config = stvae.get_preset("lavin-tiny")
    torch.manual_seed(0)
    with torch.no_grad():
        spread = stvae.STVAE(config).encode(images).std().item()
    torch.manual_seed(0)  # the same weights again, with the scale set
    vae = stvae.STVAE(attrs.evolve(config, latent_scale=config.latent_scale / spread)).eval()
    return vae, jdit.JDiT(jdit.get_preset("lavin-tiny"))


@pytest.mark.slow
def test_tiny_jdit_and_stvae_overfit_one_context():
    """Train the tiny J-DiT with the CFM loss on one fixed context; the pipeline then generates its target.

    The ST-VAE is random (untrained), so the best reachable prediction is its own reconstruction
    of the target, ``decode(encode(target))``: the test measures the error against that.
    """
    from lavin_core.flow import FlowMatchingLoss, UniformTimeSampler, training_pair

    shape = (3, 1, 16, 16)
    context = TaskContext(
        task="overfit",
        pairs=[ExamplePair(input=small(shape, 1, 0.9), target=small(shape, 2, 0.9))],
        query=small(shape, 3, 0.9),
    )
    truth = small(shape, 4, 0.9)  # the target of the query, which the model must learn
    vae, dit = _tiny_models(torch.stack([*context.frames(), truth]))
    pipe = InContextPipeline(vae, dit, EulerSampler())
    with torch.no_grad():
        cond, _ = pipe.encode_contexts([context])[0]
        z_truth = vae.encode(truth[None])
        reachable = vae.decode(z_truth)[0]

    def error() -> float:
        out = pipe(context, guidance_scale=1.0, generator=torch.Generator().manual_seed(1), progress=False)
        return rel(out.predictions[0], reachable)

    batch, steps = 16, 250
    gen = torch.Generator().manual_seed(0)
    # Uniform times: the official grid spends half its steps near t = 1, where logit-normal rarely looks.
    loss_fn, times = FlowMatchingLoss(), UniformTimeSampler()
    optimiser = torch.optim.AdamW(dit.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)
    error_before = error()
    dit.train()
    for _ in range(steps):
        t = times(batch, generator=gen)
        z_t, target = training_pair(z_truth.expand(batch, -1, -1, -1, -1), t, generator=gen)
        loss = loss_fn(dit(z_t, t, cond[None].expand(batch, -1, -1, -1, -1)), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    dit.eval()
    error_after = error()
    assert error_after < 0.25, (error_before, error_after)
    assert error_after < 0.25 * error_before, (error_before, error_after)


@pytest.mark.reliability  # issue 19: pairs=[], guidance_scale=nan
def test_pairs_are_required_and_bad_options_are_refused_before_any_work():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    context = make_context(seed=5)
    with pytest.raises(ValueError, match="pairs= is empty"):
        pipe(pairs=[], query=context.query, progress=False)
    with pytest.raises(ValueError, match="has no example pairs"):
        pipe(attrs.evolve(context, pairs=[]), progress=False)
    for bad in ({"guidance_scale": float("nan")}, {"guidance_scale": float("inf")}, {"temperature": float("nan")},
                {"num_samples": 0}, {"num_steps": 0}, {"processing_size": -8}):
        with pytest.raises(ValueError, match="must be"):
            pipe(context, progress=False, **bad)


def test_samples_are_combined_by_the_task_or_averaged_and_the_first_is_a_single_call():
    pipe = InContextPipeline(UnshuffleEncoder(), InContextOracle(), EulerSampler())
    context = make_context(seed=6)
    one = pipe(context, num_steps=3, seed=4, progress=False)
    three = pipe([context, context], num_steps=3, seed=4, num_samples=3, progress=False)
    assert len(three.samples) == 2 and all(len(s) == 3 for s in three.samples)
    assert torch.equal(three.samples[0][0], one.predictions[0])
    assert torch.allclose(three.predictions[0], torch.stack(three.samples[0]).mean(0))
    assert three.latents[0].shape[0] == 3


@pytest.mark.reliability  # issue 19: no non-finite pixels without raising
def test_a_nan_model_raises_instead_of_returning_garbage():
    class NaNDenoiser(InContextOracle):
        def forward(self, x, t, cond):
            return super().forward(x, t, cond) * float("nan")

    pipe = InContextPipeline(UnshuffleEncoder(), NaNDenoiser(), EulerSampler())
    with pytest.raises(LavinError, match="NaN or infinite"):
        pipe(make_context(seed=7), num_steps=2, progress=False)

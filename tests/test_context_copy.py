"""Context copy: a classifier fitted on a context's pairs keeps the query's pixels where the pairs keep their input's."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.pipeline import InContextPipeline
from lavin_core.pipeline.context_copy import (CopyFit, context_copy, copy_logits, copy_probability, fit_calibration,
                                              fit_copy_classifier, kept_pixels, patch_features)
from lavin_core.samplers import EulerSampler
from lavin_core.samplers.options import SamplingOptions
from tests.test_adaptation import TinyDenoiser
from tests.test_pipeline import UnshuffleEncoder


def texture(seed: int, frames: int = 1, size: int = 32) -> torch.Tensor:
    """A random image ``(3, frames, size, size)`` in [-0.9, 0.9] with no flat region."""
    return torch.rand(3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 1.8 - 0.9


def holed(image: torch.Tensor, top: int, left: int, side: int = 12) -> torch.Tensor:
    """``image`` with a flat grey (0) square cut out: an inpainting's input."""
    out = image.clone()
    out[:, :, top:top + side, left:left + side] = 0.0
    return out


def inpainting_context(pairs: int = 3) -> tuple[TaskContext, torch.Tensor]:
    """A context whose targets keep every input pixel but the grey holes, and the query's hole mask ``(1, 32, 32)``."""
    examples = [ExamplePair(input=holed(texture(i), 2 + 6 * i, 16 - 6 * i), target=texture(i)) for i in range(pairs)]
    query = holed(texture(50), 10, 10)
    hole = torch.zeros(1, 32, 32, dtype=torch.bool)
    hole[:, 10:22, 10:22] = True
    return TaskContext(task="fill", pairs=examples, query=query), hole


@settings(max_examples=25, deadline=None)
@given(frames=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9), patch=st.sampled_from([1, 3, 5]))
def test_patch_features_hold_each_pixel_and_its_neighbours(frames, height, width, patch):
    image = torch.randn(3, frames, height, width)
    features = patch_features(image, patch)
    assert features.shape == (frames * height * width, 3 * patch * patch + 3)
    values = features[:, :-3].reshape(frames, height, width, 3, patch * patch)
    assert torch.equal(values[..., patch * patch // 2].permute(3, 0, 1, 2), image)  # the middle is the pixel itself
    assert torch.allclose(features[:, -3:], values.std(dim=-1, correction=0).reshape(-1, 3))
    assert (patch_features(torch.full((3, frames, height, width), 0.3), patch)[:, -3:] < 1e-6).all()  # flat: none


def test_kept_pixels_marks_where_the_target_is_the_input_and_fits_a_shorter_input():
    image = texture(1, frames=5)
    source, kept = kept_pixels(ExamplePair(input=holed(image, 0, 0), target=image), tolerance=0.02)
    assert torch.equal(source, holed(image, 0, 0))
    assert kept.shape == (5, 32, 32) and kept[:, :12, :12].sum() == 0 and kept.sum() == 5 * (1024 - 144)
    # an input of one frame is repeated over the target's frames, as the decoder's guide is
    clip = texture(2, frames=1).expand(3, 5, 32, 32).clone()
    clip[:, 4, :4] = 1.0  # the last frame changes at the top
    _, kept = kept_pixels(ExamplePair(input=texture(2), target=clip), tolerance=0.02)
    assert kept.shape == (5, 32, 32) and kept[:4].all() and not kept[4, :4].any() and kept[4, 4:].all()


def test_the_classifier_learns_where_an_inpainting_keeps_the_query():
    context, hole = inpainting_context()
    classifier = fit_copy_classifier(context.pairs, generator=torch.Generator().manual_seed(0))
    p = copy_probability(classifier, context.query)
    assert p.shape == (1, 32, 32)
    assert p[~hole].mean() > 0.9 and p[:, 12:20, 12:20].mean() < 0.1  # the hole's rim is a patch of both
    sample = torch.zeros(3, 1, 32, 32)  # a model's answer that got every pixel wrong by the query's value
    (copied,) = context_copy([sample], context, generator=torch.Generator().manual_seed(0))
    truth = texture(50)
    assert (copied - truth).pow(2).mean() < 0.25 * (sample - truth).pow(2).mean()
    again = context_copy([sample], context, generator=torch.Generator().manual_seed(0))[0]
    assert torch.equal(copied, again)  # seeded


def test_calibration_on_held_out_pairs_tempers_a_classifier_that_does_not_carry_over():
    # each target keeps a random half of its input's pixels, whatever they look like: a classifier
    # fitted on the pairs memorises them, and only held-out pairs show that it knows nothing
    examples = []
    for i in range(4):
        source = texture(i)
        keep = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(100 + i)) < 0.5
        examples.append(ExamplePair(input=source, target=torch.where(keep, source, -source)))
    generator = torch.Generator().manual_seed(0)
    scale, shift = fit_calibration(examples, generator=generator)
    logits = copy_logits(fit_copy_classifier(examples, generator=generator), texture(9)).clamp(-10, 10)
    calibrated = torch.sigmoid(scale * logits + shift)
    assert abs(calibrated.mean() - 0.5) < 0.1 and calibrated.std() < 0.1 < torch.sigmoid(logits).std()
    # an inpainting's classifier carries over: calibration keeps it sharp
    context, hole = inpainting_context()
    scale, shift = fit_calibration(context.pairs, generator=torch.Generator().manual_seed(0))
    assert scale > 0.5
    assert fit_calibration(context.pairs[:1], generator=torch.Generator()) is None  # nothing to hold out


def test_pairs_that_keep_nothing_leave_the_samples_exactly_as_they_are():
    examples = [ExamplePair(input=texture(i), target=-texture(i)) for i in range(2)]  # no pixel survives
    context = TaskContext(task="negate", pairs=examples, query=texture(9))
    assert fit_copy_classifier(examples, generator=torch.Generator().manual_seed(0)) is None
    samples = [torch.randn(3, 1, 32, 32), torch.randn(3, 1, 32, 32)]
    out = context_copy(samples, context, generator=torch.Generator().manual_seed(0))
    assert all(a is b for a, b in zip(out, samples))
    assert copy_probability(None, texture(9)).abs().sum() == 0


def test_an_identity_task_copies_the_query_and_the_fit_is_checked():
    examples = [ExamplePair(input=texture(i), target=texture(i)) for i in range(2)]
    context = TaskContext(task="identity", pairs=examples, query=texture(7))
    (copied,) = context_copy([torch.zeros(3, 1, 32, 32)], context, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(copied, texture(7), atol=0.05)
    with pytest.raises(ValueError, match="the patch side must be odd .* got 4"):
        CopyFit(patch=4)
    with pytest.raises(ValueError, match="learns from the example pairs; the context has none"):
        fit_copy_classifier([], generator=torch.Generator())


def test_the_pipeline_copies_only_when_asked_and_leaves_the_latents_alone():
    pipe = InContextPipeline(UnshuffleEncoder(), TinyDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=2))
    context, hole = inpainting_context()
    plain = pipe(context, seed=1, num_samples=2, progress=False)
    off = pipe(context, seed=1, num_samples=2, context_copy=False, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.samples[0], off.samples[0]))
    on = pipe(context, seed=1, num_samples=2, context_copy=True, progress=False)
    assert torch.equal(on.latents[0], plain.latents[0])  # the J-DiT's answers are untouched
    query = context.query
    for before, after in zip(plain.samples[0], on.samples[0]):
        kept = ~hole.expand(3, 1, 32, 32)
        assert (after - query)[kept].abs().mean() < 0.5 * (before - query)[kept].abs().mean()
    again = pipe(context, seed=1, num_samples=2, context_copy=True, batch_size=1, progress=False)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(on.samples[0], again.samples[0]))
    # a model's recommendation turns it on; a call's keyword wins
    pipe.defaults = SamplingOptions(num_steps=2, context_copy=True).merged_over(pipe.defaults)
    assert torch.equal(pipe(context, seed=1, num_samples=2, progress=False).samples[0][0], on.samples[0][0])
    assert torch.equal(pipe(context, seed=1, num_samples=2, context_copy=False, progress=False).samples[0][0],
                       plain.samples[0][0])


def test_context_copy_options_flag_and_model_index(tmp_path):
    with pytest.raises(ValueError, match="context copy must be true or false, got 'yes'"):
        SamplingOptions(context_copy="yes")
    from lavin_core.pretrained.folders import ModelFolder

    (tmp_path / "model_index.json").write_text(json.dumps({"context_copy": True}))
    assert ModelFolder("m", tmp_path).recommended.context_copy is True
    import argparse

    from lavin_core.cli.sampling import add_sampling_arguments, sampling_options

    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    assert sampling_options(parser.parse_args(["--context-copy", "on"])).context_copy is True
    assert sampling_options(parser.parse_args(["--context-copy", "off"])).context_copy is False
    assert sampling_options(parser.parse_args([])).context_copy is None


def test_fits_on_the_worker_thread_match_the_fits_in_line_and_hand_back_errors():
    from lavin_core.pipeline.context_copy import apply_context_copy, fit_context_copy
    from lavin_core.pipeline.copy_fits import CopyFits
    from lavin_core.seeds import mix_seed

    context, _ = inpainting_context()
    samples = [texture(7), texture(8)]
    with CopyFits([context, context], seed=5) as fits:
        done = fits.result()
    for index, (query, fitted) in enumerate(done):
        assert torch.equal(query, context.query)
        expected = context_copy(samples, context, generator=torch.Generator().manual_seed(mix_seed(5, index)))
        for a, b in zip(apply_context_copy(samples, query, fitted), expected):
            assert torch.equal(a, b)
    assert fit_context_copy(context.pairs, generator=torch.Generator().manual_seed(0)) is not None
    broken = TaskContext(task="broken", pairs=[], query=context.query)  # no pairs: the fit refuses
    with CopyFits([broken], seed=5) as fits, pytest.raises(ValueError, match="the context has none"):
        fits.result()

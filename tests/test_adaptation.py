"""Test-time adaptation: leave-one-out contexts, the loss it lowers, weights restored, the pipeline path."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.flow import FlowMatchingLoss, interpolate, target_velocity
from lavin_core.jdit import JDiT, get_preset
from lavin_core.pipeline import InContextPipeline
from lavin_core.pipeline.adaptation import adapt, adapted, leave_one_out, split_pairs
from lavin_core.samplers import EulerSampler
from lavin_core.samplers.options import SamplingOptions
from tests.test_pipeline import UnshuffleEncoder, small


def labelled_cond(pairs: int, query_frames: int, target_frames: int) -> torch.Tensor:
    """Latents ``(2, T, 1, 1)`` whose channel 0 names the pair (input: j, target: 100 + j, query: -1)
    and channel 1 the frame within it."""
    frames = []
    for j in range(pairs):
        frames += [(j, f) for f in range(query_frames)] + [(100 + j, f) for f in range(target_frames)]
    frames += [(-1, f) for f in range(query_frames)]
    return torch.tensor(frames, dtype=torch.float32).T.reshape(2, -1, 1, 1)


@settings(max_examples=30, deadline=None)
@given(pairs=st.integers(2, 6), query_frames=st.integers(1, 3), target_frames=st.integers(1, 3),
       seed=st.integers(0, 2**31))
def test_leave_one_out_holds_out_one_pair_and_shows_all_the_others(pairs, query_frames, target_frames, seed):
    cond = labelled_cond(pairs, query_frames, target_frames)
    inputs, targets = split_pairs(cond, query_frames, target_frames)
    assert [int(x[0, 0]) for x in inputs] == list(range(pairs))
    assert [int(x[0, 0]) for x in targets] == [100 + j for j in range(pairs)]
    contexts, answers = leave_one_out(inputs, targets, 5, torch.Generator().manual_seed(seed))
    assert contexts.shape == (5, 2, (pairs - 1) * (query_frames + target_frames) + query_frames, 1, 1)
    assert answers.shape == (5, 2, target_frames, 1, 1)
    for context, answer in zip(contexts, answers):
        held = int(answer[0, 0, 0, 0]) - 100
        labels = context[0, :, 0, 0].tolist()
        assert labels[-query_frames:] == [held] * query_frames  # the held-out input is the query
        assert held not in labels[:-query_frames] and 100 + held not in labels
        shown = {int(v) for v in labels[:-query_frames]}
        assert shown == {j for j in range(pairs) if j != held} | {100 + j for j in range(pairs) if j != held}
        assert context[1, -query_frames:, 0, 0].tolist() == list(range(query_frames))  # frames in order


def test_bad_layouts_and_single_pairs_are_refused():
    with pytest.raises(ValueError, match="is not pairs of 1 \\+ 1 frames"):
        split_pairs(torch.zeros(4, 4, 2, 2), 1, 1)
    inputs, targets = split_pairs(torch.zeros(4, 3, 2, 2), 1, 1)
    with pytest.raises(ValueError, match="at least 2 example pairs, got 1"):
        leave_one_out(inputs, targets, 4, torch.Generator())


def tiny_jdit(seed: int = 0) -> JDiT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return JDiT(get_preset("lavin-tiny", hidden_size=96, depth=2, num_heads=2, num_kv_heads=1)).eval()


def loo_loss(model: JDiT, cond: torch.Tensor) -> float:
    """The flow-matching loss on a fixed batch of leave-one-out contexts (seeded)."""
    generator = torch.Generator().manual_seed(123)
    contexts, answers = leave_one_out(*split_pairs(cond, 1, 1), 16, generator)
    t = torch.linspace(0.05, 0.95, 16)
    noise = torch.randn(answers.shape, generator=generator)
    with torch.no_grad():
        return float(FlowMatchingLoss()(model(interpolate(answers, noise, t), t, contexts), target_velocity(answers, noise)))


def context_latents(pairs: int = 4) -> torch.Tensor:
    """A context whose targets are their inputs negated: a task the random model does not know."""
    generator = torch.Generator().manual_seed(7)
    inputs = [torch.randn(16, 1, 4, 4, generator=generator) for _ in range(pairs + 1)]
    frames = [x for i in range(pairs) for x in (inputs[i], -inputs[i])] + [inputs[-1]]
    return torch.cat(frames, dim=1)


def test_adaptation_lowers_the_loss_on_the_contexts_pairs_and_is_seeded():
    cond = context_latents()
    model = tiny_jdit()
    before = loo_loss(model, cond)
    losses = adapt(model, cond, query_frames=1, target_frames=1, steps=40, lr=1e-3,
                   generator=torch.Generator().manual_seed(0))
    assert len(losses) == 40
    assert loo_loss(model, cond) < 0.8 * before
    again = tiny_jdit()
    adapt(again, cond, query_frames=1, target_frames=1, steps=40, lr=1e-3, generator=torch.Generator().manual_seed(0))
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_adapted_restores_the_weights_after_the_block_and_after_an_error():
    cond = context_latents()
    model = tiny_jdit()
    original = [p.detach().clone() for p in model.parameters()]
    with adapted(model, cond, query_frames=1, target_frames=1, steps=3, lr=1e-3, generator=torch.Generator()):
        assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), original))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), original))
    with pytest.raises(RuntimeError, match="interrupted"):
        with adapted(model, cond, query_frames=1, target_frames=1, steps=3, lr=1e-3, generator=torch.Generator()):
            raise RuntimeError("interrupted")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), original))
    assert all(p.grad is None for p in model.parameters())  # no gradient memory left behind


def test_adapted_trains_a_frozen_model_and_leaves_it_frozen():
    cond = context_latents()
    model = tiny_jdit().requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter that requires grad"):
        adapt(model, cond, query_frames=1, target_frames=1, steps=1, lr=1e-3, generator=torch.Generator())
    with adapted(model, cond, query_frames=1, target_frames=1, steps=3, lr=1e-3, generator=torch.Generator()) as losses:
        assert len(losses) == 3
    assert not any(p.requires_grad for p in model.parameters())


class TinyDenoiser(JDiT):
    """A small random J-DiT on the 12-channel latents of the test encoder (patch 1 on 4x4 latents)."""

    def __init__(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            super().__init__(get_preset("lavin-tiny", in_channels=12, patch_size=1, hidden_size=96, depth=2,
                                        num_heads=2, num_kv_heads=1))
        self.eval()


def make_context(pairs: int, seed: int = 0) -> TaskContext:
    shape = (3, 1, 8, 8)
    inputs = [small(shape, seed + i) for i in range(pairs)]
    return TaskContext(task="negate", pairs=[ExamplePair(input=x, target=-x) for x in inputs],
                       query=small(shape, seed + 50))


def test_pipeline_adapts_each_context_alone_and_gives_the_model_back():
    pipe = InContextPipeline(UnshuffleEncoder(), TinyDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=3))
    weights = [p.detach().clone() for p in pipe.denoiser.parameters()]
    contexts = [make_context(3, seed=0), make_context(3, seed=10)]
    plain = pipe(contexts, seed=1, num_samples=2, progress=False)
    adapted_out = pipe(contexts, seed=1, num_samples=2, adapt_steps=4, adapt_lr=1e-3, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(pipe.denoiser.parameters(), weights))
    assert not torch.equal(plain.latents[0], adapted_out.latents[0])
    again = pipe(contexts, seed=1, num_samples=2, adapt_steps=4, adapt_lr=1e-3, batch_size=1, progress=False)
    for a, b in zip(adapted_out.latents, again.latents):
        assert torch.allclose(a, b, atol=1e-5)  # the same answer in any batching
    # adapt_steps=0 is the plain call, to the bit
    off = pipe(contexts, seed=1, num_samples=2, adapt_steps=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(off.latents, plain.latents))


def test_adaptation_works_under_a_callers_inference_mode():
    pipe = InContextPipeline(UnshuffleEncoder(), TinyDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=2))
    with torch.inference_mode():  # first: whatever the model caches is made under inference mode
        out = pipe(make_context(2), seed=2, adapt_steps=2, adapt_lr=1e-3, progress=False)
    expected = pipe(make_context(2), seed=2, adapt_steps=2, adapt_lr=1e-3, progress=False)
    assert torch.allclose(out.latents[0], expected.latents[0], atol=1e-6)


def test_a_single_pair_context_is_answered_unadapted_with_a_warning():
    pipe = InContextPipeline(UnshuffleEncoder(), TinyDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=2))
    contexts = [make_context(1), make_context(2, seed=5)]
    plain = pipe(contexts, seed=3, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe(contexts, seed=3, adapt_steps=2, adapt_lr=1e-3, progress=False)
    assert any("1 of 2 contexts have a single pair: answered without adaptation" in str(w.message) for w in caught)
    assert torch.equal(out.latents[0], plain.latents[0])
    assert not torch.equal(out.latents[1], plain.latents[1])


@pytest.mark.parametrize(("field", "value", "message"), [
    ("adapt_steps", -1, "the number of adaptation steps must be an integer >= 0 \\(0 turns adaptation off\\)"),
    ("adapt_steps", 2.5, "the number of adaptation steps must be an integer"),
    ("adapt_lr", 0.0, "the adaptation learning rate must be a finite number"),
    ("adapt_lr", float("nan"), "the adaptation learning rate must be a finite number"),
])
def test_bad_adaptation_options_are_one_line_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        SamplingOptions(**{field: value})


def test_the_unseen_task_note_names_the_task_and_the_flags_only_when_it_applies():
    from lavin_core.pipeline.adaptation import UNSEEN_TASK_MIN_PAIRS, UNSEEN_TASK_STEPS, unseen_task_note

    note = unseen_task_note("map_solarize", ("depth", "edges"), 0)
    assert note is not None and "'map_solarize'" in note
    assert f"--adapt-steps {UNSEEN_TASK_STEPS}" in note and f"--num-pairs {UNSEEN_TASK_MIN_PAIRS}" in note
    assert unseen_task_note("depth", ("depth", "edges"), 0) is None  # trained
    assert unseen_task_note("map_solarize", ("depth",), 80) is None  # adapting already
    assert unseen_task_note("map_solarize", None, None) is None  # the model does not list its tasks
    assert unseen_task_note("map_solarize", (), None) is None
    assert unseen_task_note(None, ("depth",), 0) is None  # pairs from --prompts alone: no task to judge

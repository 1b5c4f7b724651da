"""Conditional flow matching: the path, the loss, and the training-time samplers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.flow import (
    TIME_SAMPLERS,
    FlowMatchingLoss,
    LogitNormalTimeSampler,
    UniformTimeSampler,
    interpolate,
    resolution_shift,
    shift_time,
    target_velocity,
    training_pair,
)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_path_endpoints_and_velocity(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    z, noise = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    batch = shape[0]
    assert torch.equal(interpolate(z, noise, torch.zeros(batch)), z)
    assert torch.equal(interpolate(z, noise, torch.ones(batch)), noise)
    # The path is a straight line whose derivative in t is the target velocity e - z.
    t = torch.rand(batch, generator=gen) * 0.8 + 0.1
    h = 1e-3
    slope = (interpolate(z, noise, t + h) - interpolate(z, noise, t - h)) / (2 * h)
    assert rel(slope, target_velocity(z, noise)) < 1e-3
    # z_t = z + t (e - z): the network's target is exactly what moves z to z_t.
    expected = z + t.view(-1, 1, 1, 1, 1) * target_velocity(z, noise)
    assert rel(interpolate(z, noise, t), expected) < 1e-5


def test_interpolate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        interpolate(torch.randn(2, 3), torch.randn(2, 4), torch.rand(2))
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(2,\)"):
        interpolate(torch.randn(2, 3), torch.randn(2, 3), torch.rand(3))


def test_training_pair_is_seeded_and_consistent():
    z = torch.randn(4, 16, 1, 2, 2)
    t = torch.rand(4)
    a = training_pair(z, t, generator=torch.Generator().manual_seed(3))
    b = training_pair(z, t, generator=torch.Generator().manual_seed(3))
    c = training_pair(z, t, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    z_t, v = a
    noise = v + z
    assert rel(z_t, interpolate(z, noise, t)) < 1e-5


@pytest.mark.parametrize("kind", ["mse", "official"])
def test_loss_is_zero_at_the_exact_velocity_and_positive_elsewhere(kind):
    loss = FlowMatchingLoss(kind=kind)
    target = torch.randn(3, 16, 2, 4, 4)
    assert loss(target.clone(), target).item() == 0.0
    other = target + 0.1 * torch.randn_like(target)
    assert loss(other, target).item() > 0.0


def test_official_loss_is_mse_plus_tenth_l1():
    pred, target = torch.randn(2, 4, 1, 3, 3), torch.randn(2, 4, 1, 3, 3)
    diff = pred - target
    expected = diff.square().mean() + 0.1 * diff.abs().mean()
    assert abs(FlowMatchingLoss(kind="official")(pred, target).item() - expected.item()) < 1e-6
    assert abs(FlowMatchingLoss(kind="mse")(pred, target).item() - diff.square().mean().item()) < 1e-6
    assert FlowMatchingLoss().per_sample(pred, target).shape == (2,)


@pytest.mark.parametrize("kind", ["mse", "official"])
def test_loss_gradient_points_toward_the_target(kind):
    loss_fn = FlowMatchingLoss(kind=kind)
    target = torch.randn(2, 8, 1, 4, 4)
    pred = (target + torch.randn_like(target)).requires_grad_(True)
    loss = loss_fn(pred, target)
    loss.backward()
    descent = -pred.grad
    # Descent direction agrees with the way to the target, elementwise and overall.
    toward = target - pred.detach()
    assert (torch.sign(descent) == torch.sign(toward)).all()
    assert (descent * toward).sum() > 0
    # and a small step along it lowers the loss.
    stepped = pred.detach() + 0.1 * descent / descent.norm()
    assert loss_fn(stepped, target) < loss


def test_loss_trains_a_velocity_model():
    """Minimising the CFM loss on a point mass moves a small model toward its velocity field."""
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor([1.0, -2.0])
    model = torch.nn.Linear(3, 2)  # input (z_t, t); the true field of a point mass is (z_t - mean) / t
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = FlowMatchingLoss(kind="mse")
    sampler = UniformTimeSampler()
    first = None
    for _ in range(300):
        z = mean.expand(256, 2)
        t = sampler(256, generator=gen) * 0.8 + 0.2
        z_t, target = training_pair(z, t, generator=gen)
        loss = loss_fn(model(torch.cat([z_t, t[:, None]], dim=1)), target)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.2 * first


def test_shift_time_properties():
    t = torch.rand(100, dtype=torch.float64)
    assert torch.equal(shift_time(t, 1.0), t)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert torch.equal(shift_time(ends, 3.0), ends)
    assert (shift_time(t, 3.0) >= t).all() and (shift_time(t, 0.5) <= t).all()
    # Shifts compose multiplicatively.
    assert torch.allclose(shift_time(shift_time(t, 2.0), 1.5), shift_time(t, 3.0))
    with pytest.raises(ValueError, match="shift must be positive"):
        shift_time(t, 0.0)
    assert resolution_shift(256) == 1.0 and resolution_shift(1024) == 2.0


@pytest.mark.parametrize("name", sorted(TIME_SAMPLERS))
def test_time_samplers_are_seeded_and_in_range(name):
    sampler = TIME_SAMPLERS[name]()
    a = sampler(1000, generator=torch.Generator().manual_seed(1))
    b = sampler(1000, generator=torch.Generator().manual_seed(1))
    c = sampler(1000, generator=torch.Generator().manual_seed(2))
    assert a.shape == (1000,) and torch.equal(a, b) and not torch.equal(a, c)
    assert (a >= 0).all() and (a <= 1).all()


def test_uniform_and_logit_normal_distributions():
    gen = torch.Generator().manual_seed(0)
    n = 40_000
    uniform = UniformTimeSampler()(n, generator=gen)
    assert abs(uniform.mean().item() - 0.5) < 0.01 and abs(uniform.var().item() - 1 / 12) < 0.005
    loc, scale = 0.5, 0.7
    t = LogitNormalTimeSampler(loc=loc, scale=scale)(n, generator=gen).double()
    logits = torch.log(t / (1 - t))
    assert abs(logits.mean().item() - loc) < 0.02 and abs(logits.std().item() - scale) < 0.02
    shifted = LogitNormalTimeSampler(shift=3.0)(n, generator=torch.Generator().manual_seed(5))
    plain = LogitNormalTimeSampler()(n, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(shifted, shift_time(plain, 3.0))
    assert shifted.mean() > plain.mean()
    assert math.isclose(plain.median().item(), 0.5, abs_tol=0.01)

"""Schedules, Euler / Heun / Adams–Bashforth samplers and classifier-free guidance, on analytic fields."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from lavin_core.errors import UnknownNameError
from lavin_core.interfaces import Denoiser
from lavin_core.samplers import (
    SAMPLERS,
    AdamsBashforthSampler,
    EulerSampler,
    HeunSampler,
    adams_bashforth_weights,
    get_sampler,
    get_schedule,
    guided_velocity,
    null_context,
    null_context_from_cond,
)
from lavin_core.samplers.schedules import OFFICIAL_GRIDS, official_schedule


def rel(a: Tensor, b: Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


# ---------------------------------------------------------------------------------------------
# stand-in denoisers


class ConstantVelocity(Denoiser):
    in_channels, patch_size = 4, 1

    def __init__(self, velocity: Tensor):
        super().__init__()
        self.velocity = velocity

    def forward(self, z_t, t, cond):
        return self.velocity.expand_as(z_t)


class GaussianVelocity(Denoiser):
    """The exact flow-matching velocity for data ``N(mean, std^2)`` per element and noise ``N(0, 1)``.

    With ``m_t = (1 - t) mean`` and ``s_t^2 = (1 - t)^2 std^2 + t^2``, the field is
    ``v(z, t) = -mean + (t - (1 - t) std^2) / s_t^2 (z - m_t)``; its flow carries noise ``e`` at
    t = 1 to ``mean + std e`` at t = 0 (``exact``), a linear ODE with a known solution.
    """

    in_channels, patch_size = 4, 1

    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        self.mean, self.std = mean, std
        self.calls = 0

    def forward(self, z_t, t, cond):
        self.calls += 1
        t = t.view(-1, *([1] * (z_t.ndim - 1))).to(z_t.dtype)
        var = (1 - t) ** 2 * self.std**2 + t**2
        return -self.mean + (t - (1 - t) * self.std**2) / var * (z_t - (1 - t) * self.mean)

    def exact(self, noise: Tensor) -> Tensor:
        return self.mean + self.std * noise


class ContextVelocity(Denoiser):
    """A velocity that depends on the context (its mean over frames) and on z: per-sample, batch-free."""

    in_channels, patch_size = 4, 1

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, z_t, t, cond):
        self.calls.append(tuple(cond.shape))
        return 0.5 * z_t * t.view(-1, 1, 1, 1, 1) + cond.mean(dim=2, keepdim=True) ** 2


def gaussian_problem(dtype=torch.float64, n=64):
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(1, 4, 1, 1, 1, generator=gen, dtype=dtype)
    std = torch.rand(1, 4, 1, 1, 1, generator=gen, dtype=dtype) * 0.8 + 0.2
    noise = torch.randn(n, 4, 1, 2, 2, generator=gen, dtype=dtype)
    cond = torch.randn(n, 4, 3, 2, 2, generator=gen, dtype=dtype)
    return GaussianVelocity(mean, std), noise, cond


def final_error(sampler, steps: int) -> float:
    field, noise, cond = gaussian_problem()
    out = sampler.sample(field, noise, cond, num_steps=steps)
    return rel(out, field.exact(noise))


def slope(sampler, steps=(8, 16, 32, 64)) -> float:
    errors = [final_error(sampler, n) for n in steps]
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


# ---------------------------------------------------------------------------------------------
# schedules


def test_official_schedule_is_the_authors_grid_in_our_time():
    grid = official_schedule()
    assert grid.shape == (20,)
    assert torch.equal(grid, 1.0 - torch.tensor(OFFICIAL_GRIDS[20], dtype=torch.float64))
    assert grid[0] == 1.0 and grid[-1] == 0.0
    assert math.isclose(grid[10].item(), 1 - 0.0524) and math.isclose(grid[-2].item(), 1 - 0.81)
    for points in OFFICIAL_GRIDS:
        assert get_schedule("official", points - 1).shape == (points,)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["uniform", "shifted"]), steps=st.integers(1, 60))
def test_schedules_run_from_noise_to_data(name, steps):
    grid = get_schedule(name, steps)
    assert grid.shape == (steps + 1,) and grid.dtype == torch.float64
    assert grid[0] == 1.0 and grid[-1] == 0.0 and (grid[1:] < grid[:-1]).all()


def test_shifted_schedule_is_finer_near_noise():
    grid = get_schedule("shifted", 10, shift=3.0)
    steps = grid[:-1] - grid[1:]
    assert steps[0] < steps[-1]
    assert torch.allclose(get_schedule("shifted", 10, shift=1.0), get_schedule("uniform", 10))


def test_schedule_errors_are_one_line():
    with pytest.raises(ValueError, match="official schedule exists for 19, 29, 39 steps, got 10"):
        get_schedule("official", 10)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got -1"):
        get_schedule("uniform", -1)
    with pytest.raises(UnknownNameError, match="unknown schedule 'cosine'"):
        get_schedule("cosine", 10)
    with pytest.raises(UnknownNameError, match="did you mean 'heun'"):
        get_sampler("heum")
    with pytest.raises(ValueError, match="order must be 1, 2, 3 or 4"):
        AdamsBashforthSampler(order=5)


# ---------------------------------------------------------------------------------------------
# Euler, Heun, Adams–Bashforth


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLERS)),
    schedule=st.sampled_from(["uniform", "shifted"]),
    steps=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
def test_every_sampler_is_exact_for_a_constant_field(name, schedule, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    velocity = torch.randn(1, 4, 1, 3, 3, generator=gen)
    noise = torch.randn(2, 4, 1, 3, 3, generator=gen)
    out = get_sampler(name, schedule=schedule).sample(
        ConstantVelocity(velocity), noise, torch.randn(2, 4, 2, 3, 3, generator=gen), num_steps=steps
    )
    assert rel(out, noise - velocity) < 1e-5  # integral of v over t from 1 to 0


def test_euler_is_the_papers_update_on_the_official_grid():
    field, noise, cond = gaussian_problem(torch.float32, n=4)
    grid = official_schedule().tolist()
    z = noise
    for t, t_next in zip(grid[:-1], grid[1:]):
        z = z - (t - t_next) * field(z, torch.full((4,), t), cond)
    out = EulerSampler().sample(field, noise, cond)
    assert rel(out, z) < 1e-6
    assert EulerSampler().network_calls() == 19


class CountingField:
    """A zero velocity that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, z, t, cond):
        self.calls += 1
        return torch.zeros_like(z)


@pytest.mark.parametrize("sampler", [EulerSampler(), HeunSampler(), AdamsBashforthSampler()],
                         ids=["euler", "heun", "adams-bashforth"])
@pytest.mark.parametrize("num_steps", [None, 7])
def test_step_count_and_network_calls_are_what_sampling_does(sampler, num_steps):
    field, steps = CountingField(), []
    sampler.sample(field, torch.zeros(1, 4, 1, 2, 2), torch.zeros(1, 4, 2, 2, 2), num_steps=num_steps,
                   callback=lambda step, t, z: steps.append(step))
    assert sampler.step_count(num_steps) == len(steps)
    assert sampler.network_calls(num_steps) == field.calls


def test_euler_converges_at_first_order():
    assert 0.85 < slope(EulerSampler(schedule="uniform")) < 1.15


def test_heun_converges_at_second_order():
    assert 1.8 < slope(HeunSampler(schedule="uniform")) < 2.3


def test_adams_bashforth_converges_at_second_order():
    assert 1.8 < slope(AdamsBashforthSampler(order=2, schedule="uniform")) < 2.3


def test_adams_bashforth_3_has_a_smaller_error_than_order_2():
    """Order 3 keeps global order 2 (its first step is Euler, as in every multistep start) but a far
    smaller constant."""
    steps = (8, 16, 32, 64)
    third = [final_error(AdamsBashforthSampler(order=3, schedule="uniform"), n) for n in steps]
    second = [final_error(AdamsBashforthSampler(order=2, schedule="uniform"), n) for n in steps]
    assert all(a < 0.5 * b for a, b in zip(third, second))
    assert 1.8 < slope(AdamsBashforthSampler(order=3, schedule="uniform"), (64, 128, 256, 512)) < 3.2


@pytest.mark.parametrize("schedule", ["uniform", "shifted"])
@pytest.mark.parametrize("order", [2, 3])
def test_multistep_at_half_the_steps_is_no_worse_than_euler(schedule, order):
    euler = final_error(EulerSampler(schedule=schedule), 20)
    multistep = final_error(AdamsBashforthSampler(order=order, schedule=schedule), 10)
    assert multistep <= euler


def test_default_multistep_beats_official_euler_with_about_half_the_calls():
    euler = EulerSampler()
    multistep = AdamsBashforthSampler()
    assert multistep.network_calls() <= euler.network_calls() // 2 + 1
    assert final_error(multistep, None) <= final_error(euler, None)


@pytest.mark.parametrize(
    ("sampler", "steps"),
    [
        (EulerSampler(schedule="uniform"), 200),
        (HeunSampler(schedule="uniform"), 20),
        (AdamsBashforthSampler(order=3, schedule="uniform"), 30),
    ],
    ids=["euler", "heun", "adams-bashforth"],
)
def test_gaussian_toy_problem_recovers_mean_and_variance(sampler, steps):
    gen = torch.Generator().manual_seed(1)
    mean = torch.tensor([1.5, -0.5, 0.0, 2.0]).view(1, 4, 1, 1, 1)
    std = torch.tensor([0.3, 1.0, 2.0, 0.7]).view(1, 4, 1, 1, 1)
    field = GaussianVelocity(mean, std)
    noise = torch.randn(4000, 4, 1, 2, 2, generator=gen)
    samples = sampler.sample(field, noise, torch.zeros(4000, 4, 2, 2, 2), num_steps=steps)
    per_channel = samples.transpose(0, 1).reshape(4, -1)
    # 16,000 draws per channel: the standard error of the mean is std / 126, of the std 0.6 %.
    assert torch.allclose(per_channel.mean(dim=1), mean.flatten(), atol=0.05)
    assert torch.allclose(per_channel.std(dim=1), std.flatten(), rtol=0.03)


def test_adams_bashforth_weights():
    h = -0.1
    assert np.allclose(adams_bashforth_weights([0.5], 0.5, 0.4), [h])
    assert np.allclose(adams_bashforth_weights([0.6, 0.5], 0.5, 0.4), [-h / 2, 1.5 * h])
    assert np.allclose(adams_bashforth_weights([0.7, 0.6, 0.5], 0.5, 0.4), np.array([5, -16, 23]) / 12 * h)
    with pytest.raises(ValueError, match="distinct"):
        adams_bashforth_weights([0.5, 0.5], 0.5, 0.4)


@settings(max_examples=20, deadline=None)
@given(
    nodes=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4, unique=True).filter(
        lambda xs: min((abs(a - b) for a in xs for b in xs if a != b), default=1) > 0.05
    ),
    end=st.floats(0.0, 1.0),
    coeffs=st.lists(st.floats(-2, 2), min_size=4, max_size=4),
)
def test_adams_bashforth_weights_integrate_polynomials_exactly(nodes, end, coeffs):
    """Weights for k nodes integrate every polynomial of degree < k exactly."""
    start = nodes[-1]
    poly = np.polynomial.Polynomial(coeffs[: len(nodes)])
    weights = adams_bashforth_weights(nodes, start, end)
    exact = poly.integ()(end) - poly.integ()(start)
    assert math.isclose(sum(w * poly(x) for w, x in zip(weights, nodes)), exact, abs_tol=1e-7)


def test_callback_sees_every_step_on_the_grid():
    field, noise, cond = gaussian_problem(torch.float32, n=2)
    seen = []
    sampler = AdamsBashforthSampler(schedule="uniform")
    out = sampler.sample(field, noise, cond, num_steps=5, callback=lambda i, t, z: seen.append((i, t, z.clone())))
    assert [i for i, _, _ in seen] == list(range(5))
    assert np.allclose([t for _, t, _ in seen], [0.8, 0.6, 0.4, 0.2, 0.0])
    assert torch.equal(seen[-1][2], out)


def test_samplers_are_stateless_and_deterministic():
    """One sampler object, used from several threads at once, gives each call the same answer."""
    sampler = AdamsBashforthSampler(order=3)
    field, noise, cond = gaussian_problem(torch.float32, n=8)
    reference = sampler.sample(field, noise, cond)
    results = [None] * 4

    def work(i):
        results[i] = sampler.sample(field, noise, cond)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(r, reference) for r in results)
    with pytest.raises(AttributeError):
        sampler.order = 2  # frozen: settings, not state


# ---------------------------------------------------------------------------------------------
# guidance


def test_null_context_is_a_zero_frame_then_the_query():
    query = torch.randn(2, 4, 5, 3, 3)
    null = null_context(query)
    assert null.shape == (2, 4, 6, 3, 3)
    assert torch.equal(null[:, :, 0], torch.zeros(2, 4, 3, 3)) and torch.equal(null[:, :, 1:], query)
    cond = torch.cat([torch.randn(2, 4, 4, 3, 3), query], dim=2)
    assert torch.equal(null_context_from_cond(cond, query_frames=5), null)


def test_guidance_scale_one_is_the_conditional_pass_alone():
    field = ContextVelocity()
    z, t = torch.randn(3, 4, 1, 2, 2), torch.rand(3)
    cond = torch.randn(3, 4, 5, 2, 2)
    null = null_context_from_cond(cond)
    guided = guided_velocity(field, z, t, cond, null_cond=null, guidance_scale=1.0)
    assert len(field.calls) == 1
    assert torch.equal(guided, field(z, t, cond))
    noise = torch.randn(3, 4, 1, 2, 2)
    with_null = EulerSampler().sample(field, noise, cond, null_cond=null, guidance_scale=1.0)
    without = EulerSampler().sample(field, noise, cond)
    assert torch.equal(with_null, without)


def test_guided_velocity_extrapolates_from_the_null_pass():
    field = ContextVelocity()
    z, t = torch.randn(3, 4, 1, 2, 2), torch.rand(3)
    cond, null = torch.randn(3, 4, 5, 2, 2), torch.randn(3, 4, 2, 2, 2)
    v_cond, v_null = field(z, t, cond), field(z, t, null)
    field.calls.clear()
    guided = guided_velocity(field, z, t, cond, null_cond=null, guidance_scale=1.5)
    assert field.calls == [(3, 4, 5, 2, 2), (3, 4, 2, 2, 2)]  # shapes differ: two calls
    assert rel(guided, v_null + 1.5 * (v_cond - v_null)) < 1e-6


def test_batched_and_unbatched_guidance_agree():
    field = ContextVelocity()
    noise = torch.randn(3, 4, 1, 2, 2)
    cond, null = torch.randn(3, 4, 4, 2, 2), torch.randn(3, 4, 4, 2, 2)  # same shape: batchable
    batched = EulerSampler(batch_cfg=True).sample(field, noise, cond, null_cond=null, guidance_scale=2.0)
    assert len(field.calls) == 19 and field.calls[0] == (6, 4, 4, 2, 2)  # one doubled call per step
    field.calls.clear()
    separate = EulerSampler(batch_cfg=False).sample(field, noise, cond, null_cond=null, guidance_scale=2.0)
    assert len(field.calls) == 38
    assert rel(batched, separate) < 1e-5


def test_guidance_rejects_a_null_context_of_another_size():
    field = ContextVelocity()
    with pytest.raises(ValueError, match="only the frame count may differ"):
        guided_velocity(
            field, torch.randn(2, 4, 1, 2, 2), torch.rand(2), torch.randn(2, 4, 3, 2, 2),
            null_cond=torch.randn(2, 4, 2, 4, 4), guidance_scale=1.5,
        )

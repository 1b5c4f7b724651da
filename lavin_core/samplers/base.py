"""What every flow-matching ODE sampler shares: the time grid, guidance, progress bar and callback.

A subclass writes only ``integrate``: a generator that walks the grid by position and yields the
latents after each step. Samplers are frozen attrs classes: their fields are settings, never
state, so one object serves any number of calls at once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator

import attrs
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lavin_core.errors import UnknownNameError
from lavin_core.interfaces import Denoiser, Sampler, StepCallback
from lavin_core.samplers.guidance import guided_velocity
from lavin_core.samplers.schedules import OFFICIAL_STEPS, SCHEDULES, get_schedule

#: ``velocity(z, t) -> v``: the (guided) denoiser at latents ``z`` ``(B, C, T, h, w)`` and time ``t``.
VelocityFn = Callable[[Tensor, float], Tensor]


def _positive_int(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _schedule_name(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in SCHEDULES:
        raise UnknownNameError("schedule", value, SCHEDULES)


def schedule_field(default: str):
    """The ``schedule`` field with another default, for subclasses (keeps the validator)."""
    return attrs.field(default=default, validator=_schedule_name)


def steps_field(default: int):
    """The ``default_steps`` field with another default, for subclasses (keeps the validator)."""
    return attrs.field(default=default, validator=_positive_int)


@attrs.frozen(kw_only=True)
class FlowSampler(Sampler):
    """Integrates ``dz/dt = v(z, t)`` from t = 1 to t = 0 over a named time grid.

    ``schedule``: a name in ``samplers.schedules.SCHEDULES`` (default ``"auto"``: the authors' grid
    at 19, 29 and 39 steps, uniform steps at any other count); ``shift`` is used by ``"shifted"``.
    ``default_steps``: the step count when a call passes ``num_steps=None``.
    ``batch_cfg``: run the conditional and null passes in one call when their shapes allow.
    """

    schedule: str = schedule_field("auto")
    shift: float = attrs.field(default=3.0, validator=attrs.validators.gt(0.0))
    default_steps: int = attrs.field(default=OFFICIAL_STEPS, validator=_positive_int)
    batch_cfg: bool = True

    def timesteps(self, num_steps: int | None = None) -> Tensor:
        """The ``(num_steps + 1,)`` float64 grid this sampler walks, from 1 down to 0."""
        steps = self.default_steps if num_steps is None else num_steps
        options = {"shift": self.shift} if self.schedule == "shifted" else {}
        return get_schedule(self.schedule, steps, **options)

    #: Denoiser evaluations per step (Heun's method: 2).
    calls_per_step = 1

    def step_count(self, num_steps: int | None = None) -> int:
        """The steps this sampler takes for ``num_steps`` (None: its default) on its grid."""
        return len(self.timesteps(num_steps)) - 1

    def network_calls(self, num_steps: int | None = None) -> int:
        """Denoiser evaluations per sample, not counting the extra CFG pass."""
        return self.step_count(num_steps) * self.calls_per_step

    @abc.abstractmethod
    def integrate(self, velocity: VelocityFn, z: Tensor, times: list[float]) -> Iterator[Tensor]:
        """Yield the latents at ``times[1]``, ``times[2]``, ... starting from ``z`` at ``times[0]``."""

    def sample(
        self,
        denoiser: Denoiser,
        noise: Tensor,
        cond: Tensor,
        *,
        null_cond: Tensor | None = None,
        guidance_scale: float = 1.0,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Latents at t = 0 from ``noise`` ``(B, C, T, h, w)`` (see ``Sampler.sample``). These ODE samplers ignore ``generator``."""
        if noise.shape[0] != cond.shape[0]:
            raise ValueError(f"noise has batch {noise.shape[0]} but the context has {cond.shape[0]}")
        times = self.timesteps(num_steps).tolist()

        def velocity(z: Tensor, t: float) -> Tensor:
            t_batch = torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device)
            return guided_velocity(
                denoiser, z, t_batch, cond,
                null_cond=null_cond, guidance_scale=guidance_scale, batch_passes=self.batch_cfg,
            )

        z = noise
        with tqdm(total=len(times) - 1, disable=not progress, desc=type(self).__name__, leave=False) as bar:
            for index, z in enumerate(self.integrate(velocity, noise, times)):
                if callback is not None:
                    callback(index, times[index + 1], z)
                bar.update()
        return z

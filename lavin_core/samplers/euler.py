"""The Euler sampler, as the paper writes it: ``z <- z - dt * v``."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
from torch import Tensor

from lavin_core.samplers.base import FlowSampler, VelocityFn


@attrs.frozen(kw_only=True)
class EulerSampler(FlowSampler):
    """First-order Euler steps; by default the authors' 19-step grid (one network call per step)."""

    def integrate(self, velocity: VelocityFn, z: Tensor, times: list[float]) -> Iterator[Tensor]:
        for t, t_next in zip(times[:-1], times[1:]):
            dt = t - t_next  # positive: time runs from noise (1) to data (0)
            z = z - dt * velocity(z, t)
            yield z

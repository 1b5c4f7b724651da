"""Adams–Bashforth multistep sampling: high order at one network call per step.

Each step integrates the polynomial through the last ``order`` velocities over the step. The grid
may be uneven, so the weights come from the actual times (``adams_bashforth_weights``), not from
the textbook constant-step table. The first steps, with less history, use the lower orders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import attrs
import numpy as np
from numpy.polynomial import polynomial as P
from torch import Tensor

from lavin_core.samplers.base import FlowSampler, VelocityFn, schedule_field, steps_field


def adams_bashforth_weights(nodes: Sequence[float], start: float, end: float) -> list[float]:
    """Weights ``w_j`` with ``sum_j w_j f(nodes[j]) = integral_start^end p(s) ds`` for the interpolant ``p``.

    ``p`` is the polynomial of degree ``len(nodes) - 1`` through ``(nodes[j], f(nodes[j]))``; the
    weights are the integrals of its Lagrange basis. One node gives ``[end - start]`` (Euler).
    """
    x = np.asarray(nodes, dtype=np.float64) - start  # centre on the step for conditioning
    if len(set(x.tolist())) != len(x):
        raise ValueError(f"nodes must be distinct, got {list(nodes)}")
    weights = []
    for j in range(len(x)):
        others = np.delete(x, j)
        basis = P.polyfromroots(others) / np.prod(x[j] - others)
        antiderivative = P.polyint(basis)
        weights.append(float(P.polyval(end - start, antiderivative) - P.polyval(0.0, antiderivative)))
    return weights


def _order(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value not in (1, 2, 3, 4):
        raise ValueError(f"order must be 1, 2, 3 or 4, got {value!r}")


@attrs.frozen(kw_only=True)
class AdamsBashforthSampler(FlowSampler):
    """Variable-step Adams–Bashforth of ``order`` (1 = Euler); one network call per step.

    Defaults: order 2 over 10 shifted steps, half the calls of the official Euler-19.
    """

    order: int = attrs.field(default=2, validator=_order)
    schedule: str = schedule_field("shifted")
    default_steps: int = steps_field(10)

    def integrate(self, velocity: VelocityFn, z: Tensor, times: list[float]) -> Iterator[Tensor]:
        history: deque[tuple[float, Tensor]] = deque(maxlen=self.order)  # newest last
        for t, t_next in zip(times[:-1], times[1:]):
            history.append((t, velocity(z, t)))
            weights = adams_bashforth_weights([s for s, _ in history], t, t_next)
            for weight, (_, v) in zip(weights, history):
                z = z + weight * v
            yield z

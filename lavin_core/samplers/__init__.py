"""Samplers that integrate a flow-matching denoiser from noise (t = 1) to data (t = 0).

    >>> from lavin_core.samplers import get_sampler
    >>> sampler = get_sampler("euler")                 # the official 19-step Euler grid
    >>> latents = sampler.sample(denoiser, noise, cond, null_cond=null, guidance_scale=1.5)

All are stateless frozen attrs classes implementing ``lavin_core.interfaces.Sampler``.
"""

from __future__ import annotations

from typing import Any

from lavin_core.errors import UnknownNameError
from lavin_core.interfaces import Sampler
from lavin_core.samplers.base import FlowSampler
from lavin_core.samplers.euler import EulerSampler
from lavin_core.samplers.guidance import can_batch, guided_velocity, null_context, null_context_from_cond
from lavin_core.samplers.heun import HeunSampler
from lavin_core.samplers.multistep import AdamsBashforthSampler, adams_bashforth_weights
from lavin_core.samplers.schedules import SCHEDULES, get_schedule

#: Samplers by name, for the CLI and configs: ``SAMPLERS[name](**options)``.
SAMPLERS: dict[str, type[FlowSampler]] = {
    "euler": EulerSampler,
    "heun": HeunSampler,
    "adams-bashforth": AdamsBashforthSampler,
}


def get_sampler(name: str, **options: Any) -> Sampler:
    """The sampler called ``name`` built with ``options``; ``UnknownNameError`` lists the known ones."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise UnknownNameError("sampler", name, SAMPLERS) from None
    return cls(**options)


def sampler_name(sampler: Sampler) -> str:
    """The name ``get_sampler`` knows ``sampler``'s class by (its class name for other samplers)."""
    return next((name for name, cls in SAMPLERS.items() if type(sampler) is cls), type(sampler).__name__)


__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "AdamsBashforthSampler",
    "EulerSampler",
    "FlowSampler",
    "HeunSampler",
    "adams_bashforth_weights",
    "can_batch",
    "get_sampler",
    "get_schedule",
    "guided_velocity",
    "null_context",
    "null_context_from_cond",
    "sampler_name",
]

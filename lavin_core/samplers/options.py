"""How to sample: one validated value shared by the pipeline, ``lavin run``, ``demo`` and ``bench``.

    >>> options = SamplingOptions(num_steps=4, guidance_scale=2.0, num_samples=6, seed=0)
    >>> options.merged_over(pipe.defaults)      # None fields take the model's recommendations

Every field may be None, meaning "the default": the model's recommendation (its
``model_index.json``) where it has one, else the official setting. ``merged_over`` fills them
in; ``ModelDefaults`` holds what a model recommends. Every number is checked here, once, for
type, finiteness and range, with a one-line error naming the value and what would work; a NaN
guidance scale would otherwise give a uniform image without a word.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

#: The classifier-free guidance scale of the authors' inference code.
OFFICIAL_GUIDANCE = 1.5
#: Example pairs in the authors' inference.
OFFICIAL_PAIRS = 4
#: The test-time adaptation learning rate (AdamW), measured on lavin-tiny-icl's validation seed.
ADAPT_LR = 1e-3


class OptionError(ValueError):
    """A sampling option out of range; ``field`` names it (the CLI adds its flag to the message)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _number(what: str, *, minimum: float = 0.0, hint: str = ""):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
            raise OptionError(attribute.name, f"{what} must be a finite number >= {minimum:g}{hint}, got {value!r}")

    return check


def _count(what: str, *, minimum: int = 1, hint: str = ""):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise OptionError(attribute.name, f"{what} must be an integer >= {minimum}{hint}, got {value!r}")

    return check


def _flag(what: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and not isinstance(value, bool):
            raise OptionError(attribute.name, f"{what} must be true or false, got {value!r}")

    return check


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@attrs.frozen(kw_only=True)
class SamplingOptions:
    """Settings of one prediction call; None means the model's default (see ``merged_over``).

    ``num_steps``: sampler steps (None: the sampler's, 19 for Euler). ``schedule``: the time grid
    (None: the sampler's own, which has a grid for any step count). ``guidance_scale``: CFG scale,
    1 = no null pass. ``temperature``: scale of the starting noise, 0 = one deterministic answer.
    ``num_samples``: samples per query, combined into one answer. ``seed``: the noise seed when no
    generator is given. ``num_pairs``: example pairs per context where the caller picks them.
    ``processing_size``: the longer side queries are processed at, the prediction being resized
    back to the query's size; 0 processes every query at its own size. ``adapt_steps``: optimizer
    steps of test-time adaptation on each context's own pairs before it is answered (0: none, the
    default; see ``lavin_core.pipeline.adaptation``), at learning rate ``adapt_lr``.
    ``context_copy``: keep the query's pixels where the context's pairs keep their input's
    (``lavin_core.pipeline.context_copy``; off by default).
    """

    num_steps: int | None = attrs.field(default=None, validator=_count("the number of steps"))
    schedule: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str)))
    guidance_scale: float | None = attrs.field(
        default=None, converter=_to_float, validator=_number("the guidance scale", hint=" (1 turns guidance off)"))
    temperature: float | None = attrs.field(
        default=None, converter=_to_float,
        validator=_number("the temperature", hint=" (1 = the noise the model was trained on, 0 = deterministic)"))
    num_samples: int | None = attrs.field(default=None, validator=_count("the number of samples per query"))
    seed: int | None = attrs.field(default=None, validator=_count("the seed", minimum=0))
    num_pairs: int | None = attrs.field(default=None, validator=_count("the number of example pairs"))
    processing_size: int | None = attrs.field(
        default=None, validator=_count("the processing size", minimum=0, hint=" (0 keeps each query's own size)"))
    adapt_steps: int | None = attrs.field(
        default=None, validator=_count("the number of adaptation steps", minimum=0, hint=" (0 turns adaptation off)"))
    adapt_lr: float | None = attrs.field(default=None, converter=_to_float,
                                         validator=_number("the adaptation learning rate", minimum=1e-12))
    context_copy: bool | None = attrs.field(default=None, validator=_flag("context copy"))

    def merged_over(self, defaults: SamplingOptions) -> SamplingOptions:
        """These options with every None field taken from ``defaults``."""
        return SamplingOptions(**{
            name: getattr(defaults, name) if value is None else value
            for name, value in attrs.asdict(self, recurse=False).items()
        })


#: What a model without recommendations samples with: the authors' settings.
OFFICIAL_DEFAULTS = SamplingOptions(guidance_scale=OFFICIAL_GUIDANCE, temperature=1.0, num_samples=1,
                                    num_pairs=OFFICIAL_PAIRS, processing_size=0, adapt_steps=0, adapt_lr=ADAPT_LR,
                                    context_copy=False)


def model_defaults(recommended: SamplingOptions | None) -> SamplingOptions:
    """A model's recommendations over the official settings (``recommended`` None: the official ones)."""
    return OFFICIAL_DEFAULTS if recommended is None else recommended.merged_over(OFFICIAL_DEFAULTS)

"""The five interfaces every LaVin component implements.

Data flow (see the README):

    TaskContext --Encoder.encode--> latents --Sampler(Denoiser)--> latents --Encoder.decode--> pixels
                                                                       --Task.read--> answer

Tensor conventions, shared by every implementation:

- pixels: float in [-1, 1], ``(B, 3, T, H, W)``; an image is ``T = 1``, a clip ``T = 1 + 4k``.
- latents: ``(B, C, T', h, w)``, normalized by the encoder (``(mean - shift) * scale``).
- time: ``t = 0`` is data, ``t = 1`` is noise, ``z_t = (1 - t) z + t e``, velocity ``v = e - z``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from lavin_core.ensemble import minimum_bayes_risk
from registry.manager import declare_interface

if TYPE_CHECKING:
    from lavin_core.context import Example, ExamplePair

#: ``callback(step, t, z)`` after each sampler step: the step index (0-based), the time reached
#: and the current latents. It must not modify ``z`` in place.
StepCallback = Callable[[int, float, Tensor], None]


class Encoder(nn.Module, metaclass=abc.ABCMeta):
    """Maps pixels ``(B, 3, T, H, W)`` in [-1, 1] to normalized latents ``(B, C, T', h, w)`` and back.

    ``T' = 1 + (T - 1) // temporal_compression`` and ``h = H // spatial_compression``.
    """

    temporal_compression: int
    spatial_compression: int
    latent_channels: int
    #: Whether ``decode`` also takes ``guide=``, the query's pixels in the answer's shape (a
    #: query-guided decoder, ``lavin_core.stvae.guide``); pipelines pass it only then.
    takes_guide: bool = False

    @abc.abstractmethod
    def encode(self, pixels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Normalized latents of ``pixels``: the posterior mean, or a sample when ``generator`` is given."""

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Pixels in [-1, 1] for normalized ``latents``."""

    def latent_shape(self, pixel_shape: Sequence[int]) -> tuple[int, ...]:
        """The latent shape for a pixel shape ``(..., 3, T, H, W)``; raises ``ValueError`` if it cannot be encoded."""
        *lead, channels, frames, height, width = pixel_shape
        if channels != 3:
            raise ValueError(f"pixels must have 3 channels, got {channels} in shape {tuple(pixel_shape)}")
        tc, sc = self.temporal_compression, self.spatial_compression
        if (frames - 1) % tc:
            raise ValueError(
                f"a clip must have 1 + {tc}k frames, got {frames}; use {frames - (frames - 1) % tc} "
                f"or {frames + tc - (frames - 1) % tc} frames"
            )
        if height % sc or width % sc:
            raise ValueError(
                f"height and width must be multiples of {sc}, got {height}x{width}; "
                f"try {height - height % sc or sc}x{width - width % sc or sc}"
            )
        return (*lead, self.latent_channels, 1 + (frames - 1) // tc, height // sc, width // sc)


class Denoiser(nn.Module, metaclass=abc.ABCMeta):
    """Predicts the flow-matching velocity of the target latents given the conditional latents.

    ``forward(z_t, t, cond)``:
        z_t:  ``(B, C, T_target, h, w)`` noisy target latents at time ``t``;
        t:    ``(B,)`` times in [0, 1], 0 = data, 1 = noise (the paper's convention);
        cond: ``(B, C, T_cond, h, w)`` clean conditional latents, the frames
              ``[in_1, tgt_1, ..., in_N, tgt_N, query]`` (or ``[0, query]`` for the null context).
    returns the velocity ``v = e - z``, shaped like ``z_t``.
    """

    in_channels: int
    patch_size: int

    @abc.abstractmethod
    def forward(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor: ...


class Sampler(abc.ABC):
    """Integrates a denoiser from noise (t = 1) to data (t = 0).

    Samplers are stateless: every call receives everything it needs, so one sampler object can
    serve many threads and pipelines at once.
    """

    @abc.abstractmethod
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
        """Latents at t = 0 starting from ``noise`` (the latents at t = 1).

        With ``null_cond`` and ``guidance_scale != 1`` the velocity is
        ``v_null + guidance_scale * (v_cond - v_null)``. ``num_steps=None`` means the sampler's own
        default; ``generator`` feeds stochastic samplers; ``callback`` runs after every step;
        ``progress`` shows a tqdm bar.
        """


class PromptSampler(abc.ABC):
    """Chooses which example pairs of a pool go into a task context."""

    #: The registry name, e.g. ``"random"``.
    name: ClassVar[str]

    @abc.abstractmethod
    def select(
        self,
        pool: Sequence[ExamplePair],
        query: Tensor,
        num_pairs: int,
        *,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        """Indices into ``pool`` of the ``num_pairs`` pairs to use for ``query`` ``(3, T, H, W)``."""


class Task(abc.ABC):
    """A vision task posed as image (or clip) generation.

    A task supplies examples, turns its structured answers (depth maps, masks, keypoints, ...)
    into target pixels and back, and scores predictions with its usual metrics. A task whose
    mapping varies from context to context draws one ``instance`` per context.
    """

    #: The registry name, e.g. ``"depth"``.
    name: ClassVar[str]
    #: One line for ``lavin tasks``.
    description: ClassVar[str]
    #: Metric names, the main one first, e.g. ``("abs_rel", "delta1")``.
    metrics: ClassVar[tuple[str, ...]]
    #: For each metric name: True if larger is better.
    higher_is_better: ClassVar[dict[str, bool]]
    #: Which split of a training universe the task belongs to: ``"trained"``, ``"held-out"``
    #: (declared never to be trained on), or None (not declared: most plugin tasks).
    split: ClassVar[str | None] = None

    @abc.abstractmethod
    def examples(self, count: int, *, seed: int = 0) -> Iterator[Example]:
        """``count`` deterministic examples for ``seed``: input and target pixels plus the true answer."""

    @abc.abstractmethod
    def render(self, answer: Any) -> Tensor:
        """Target pixels ``(3, T, H, W)`` in [-1, 1] that draw a structured ``answer``."""

    @abc.abstractmethod
    def read(self, pixels: Tensor) -> Any:
        """The structured answer drawn in ``pixels`` ``(3, T, H, W)`` (the inverse of ``render``)."""

    @abc.abstractmethod
    def score(self, predicted: Any, truth: Any) -> dict[str, float]:
        """Every metric in ``metrics`` for a predicted answer against the true one."""

    def instance(self, seed: int) -> Task:
        """The task as drawn for one context: its hidden parameters (a palette, a colour map, a line
        colour and thickness, a marker style, a transform and its parameters) drawn from ``seed``.

        Every pair and the query of one context come from one instance, so only the context's
        examples reveal the parameters; the instance's ``examples``, ``render``, ``read`` and
        ``score`` are the ones to use for that context, and its ``repr`` names the drawn values
        (the latent cache fingerprints it). Contexts get ``seed = lavin_core.seeds.context_seed(
        stream seed, context index)``. It must be deterministic in ``seed`` and leave ``self``
        unchanged. A task with one fixed mapping returns itself: the default.
        """
        return self

    def combine(self, answers: Sequence[Any]) -> Any:
        """One answer from several sampled ones for the same query (see ``lavin_core.ensemble``).

        The default is the minimum-Bayes-risk choice under the main metric: the answer that
        scores best against all the others. Override it where answers average (images, depth).
        """
        main = self.metrics[0]
        return minimum_bayes_risk(answers, lambda a, b: self.score(a, b)[main],
                                  higher_is_better=self.higher_is_better[main])


# The registry checks what plugins build against these (it imports nothing of LaVin itself).
declare_interface("task", Task)
declare_interface("prompt sampler", PromptSampler)

"""Context-calibrated copy: where a context's examples keep their input's pixels, the answer keeps the query's.

Many tasks change only part of an image: an inpainting fills its grey holes, a deraining removes
streaks, a video prediction moves a few objects over a still background, a solarize inverts
only the bright pixels. The examples show which part: wherever a pair's target equals its input.
The J-DiT redraws every pixel through a 16 x 8 x 8 latent, and even with the decoder's copy gate
(``lavin_core.stvae.copy_gate``, trained across all tasks at once) it keeps the unchanged pixels
less exactly than copying them would.

So, per context, a small classifier learns from the pairs alone where an input pixel survives into
the target: its features are the input's ``patch x patch`` neighbourhood (RGB), its label whether
the target there lies within ``tolerance`` of the input in every channel. Applied to the query it
gives ``p``, the probability that the answer keeps each query pixel, and every sample becomes

    lerp(sample, query, p) = p * query + (1 - p) * sample

the expected pixel when the answer is the query with probability ``p`` and the model's sample
otherwise. A context whose pairs keep almost no pixel (a depth map, a segmentation, a colour
map) fits nothing and its samples pass unchanged. It is training-free test-time learning of one
thing, where to copy, from the examples; the J-DiT still draws everything that changes. The
settings (``CopyFit``) were chosen on lavin-tiny-icl's validation seed 7
(``configs/lavin-tiny-icl/README.md``, eleventh step).

    >>> p = copy_probability(fit_copy_classifier(context.pairs, generator=g), guide)   # (T, H, W) in [0, 1]
    >>> answers = context_copy(samples, context, generator=g)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.stvae.guide import guide_frames


#: Logits are clamped to this before calibration (a probability within 5e-5 of 0 or 1).
CLAMP = 10.0


@attrs.frozen(kw_only=True)
class CopyFit:
    """How the per-context classifier is fitted.

    ``tolerance``: a target pixel counts as kept when every channel lies within this of the
    input (pixels in [-1, 1]; 0.02 is 2.5 levels of 255). ``patch``: the side of the input
    neighbourhood it reads. ``hidden``: its hidden width (one SiLU layer). ``steps`` / ``lr``:
    full-batch Adam steps on the binary cross-entropy. ``max_pixels``: pixels drawn from the
    pairs to fit on. ``min_share``: below this share of kept pixels in the pairs, nothing is copied.
    """

    tolerance: float = attrs.field(default=0.02, validator=attrs.validators.gt(0.0))
    patch: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    hidden: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    lr: float = attrs.field(default=1e-2, validator=attrs.validators.gt(0.0))
    max_pixels: int = attrs.field(default=8192, validator=attrs.validators.ge(1))
    min_share: float = attrs.field(default=1e-3, validator=attrs.validators.ge(0.0))

    def __attrs_post_init__(self) -> None:
        if self.patch % 2 == 0:
            raise ValueError(f"the patch side must be odd (a pixel and its neighbours on every side), got {self.patch}")


def patch_features(frames: Tensor, patch: int) -> Tensor:
    """Each pixel's ``patch x patch`` neighbourhood of ``frames`` ``(3, T, H, W)`` (the border extended by
    replication) and its standard deviation per channel: ``(T * H * W, 3 * patch ** 2 + 3)``. The
    spread makes flat regions (an inpainting's grey hole, a clipped highlight) separable by a line."""
    half, channels = patch // 2, frames.shape[0]
    per_frame = F.pad(frames.float().transpose(0, 1), (half, half, half, half), mode="replicate")  # (T, 3, H+, W+)
    values = F.unfold(per_frame, patch).transpose(1, 2).reshape(-1, channels, patch * patch)
    return torch.cat([values.flatten(1), values.std(dim=2, correction=0)], dim=1)


def kept_pixels(pair: ExamplePair, tolerance: float) -> tuple[Tensor, Tensor]:
    """A pair's input fitted to its target's frames and size (``guide_frames``) ``(3, T, H, W)``, and
    per target pixel whether it kept the input's value ``(T, H, W)`` (1.0 or 0.0)."""
    target = pair.target.float()
    source = guide_frames(pair.input.float()[None], target.shape[1], tuple(target.shape[-2:]))[0]
    return source, ((target - source).abs().amax(dim=0) <= tolerance).float()


class CopyClassifier(torch.nn.Module):
    """``patch`` neighbourhood features -> the logit that the pixel is kept."""

    def __init__(self, features: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.first = torch.nn.Parameter(torch.randn(features, hidden, generator=generator) / features ** 0.5)
        self.first_bias = torch.nn.Parameter(torch.zeros(hidden))
        self.last = torch.nn.Parameter(torch.randn(hidden, 1, generator=generator) / hidden ** 0.5)
        self.last_bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return (F.silu(x @ self.first + self.first_bias) @ self.last + self.last_bias)[:, 0]


def fit_copy_classifier(pairs: Sequence[ExamplePair], fit: CopyFit = CopyFit(), *,
                        generator: torch.Generator) -> CopyClassifier | None:
    """The classifier of where the pairs keep their input's pixels, or None when they keep fewer than
    ``fit.min_share`` of them (nothing to copy). ``generator`` draws the start and the fitted pixels."""
    if not pairs:
        raise ValueError("context copy learns from the example pairs; the context has none")
    sources, labels = zip(*(kept_pixels(pair, fit.tolerance) for pair in pairs))
    y = torch.cat([label.reshape(-1) for label in labels])
    if y.mean().item() < fit.min_share:
        return None
    x = torch.cat([patch_features(source, fit.patch) for source in sources])
    if len(y) > fit.max_pixels:
        chosen = torch.randperm(len(y), generator=generator)[: fit.max_pixels]
        x, y = x[chosen], y[chosen]
    classifier = CopyClassifier(x.shape[1], fit.hidden, generator)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=fit.lr)
    # also under a caller's no_grad or inference_mode (the pipeline samples under no_grad)
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.clone(), y.clone()
        for _ in range(fit.steps):
            loss = F.binary_cross_entropy_with_logits(classifier(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return classifier.requires_grad_(False)


def copy_logits(classifier: CopyClassifier | None, guide: Tensor, patch: int = CopyFit().patch) -> Tensor:
    """Per pixel of ``guide`` ``(3, T, H, W)`` (the query fitted to the answer), the logit that the
    answer keeps it: ``(T, H, W)``; -inf for no classifier."""
    if classifier is None:
        return guide.new_full(guide.shape[1:], -math.inf, dtype=torch.float32)
    with torch.no_grad():
        return classifier(patch_features(guide, patch)).reshape(guide.shape[1:])


def copy_probability(classifier: CopyClassifier | None, guide: Tensor, patch: int = CopyFit().patch) -> Tensor:
    """``sigmoid(copy_logits(...))``: the classifier's probability that the answer keeps each pixel, ``(T, H, W)``."""
    return torch.sigmoid(copy_logits(classifier, guide, patch))


def fit_calibration(pairs: Sequence[ExamplePair], fit: CopyFit = CopyFit(), *,
                    generator: torch.Generator) -> tuple[float, float] | None:
    """Platt scaling ``(a, b)`` of the classifier's logits, ``P(kept) = sigmoid(a * logit + b)``, fitted on
    held-out pairs: each pair in turn is scored by a classifier fitted on the others. None for
    fewer than two pairs (nothing to hold out) or when no held-out fit finds anything to copy.

    It is what keeps a classifier honest on tasks whose kept pixels do not carry over from one
    image to the next: a flip keeps a flat background's pixels where it happens to meet flat
    background again, and a classifier of flat patches, right on its own pairs, is wrong on a new one.
    """
    if len(pairs) < 2:
        return None
    logits, labels = [], []
    for held in range(len(pairs)):
        classifier = fit_copy_classifier([p for k, p in enumerate(pairs) if k != held], fit, generator=generator)
        if classifier is None:
            continue
        source, kept = kept_pixels(pairs[held], fit.tolerance)
        logits.append(copy_logits(classifier, source, fit.patch).reshape(-1))
        labels.append(kept.reshape(-1))
    if not logits:
        return None
    z, y = torch.cat(logits).clamp(-CLAMP, CLAMP), torch.cat(labels)
    scale = torch.ones((), requires_grad=True)
    shift = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([scale, shift], max_iter=50, line_search_fn="strong_wolfe")
    with torch.inference_mode(False), torch.enable_grad():
        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(scale * z + shift, y)
            loss.backward()
            return loss

        optimizer.step(closure)
    return float(scale.detach()), float(shift.detach())


@attrs.frozen
class CopyMap:
    """What a context's pairs say about copying: the classifier and its calibration ``(a, b)`` (or None)."""

    classifier: CopyClassifier
    calibration: tuple[float, float] | None


def fit_context_copy(pairs: Sequence[ExamplePair], fit: CopyFit = CopyFit(), *,
                     generator: torch.Generator) -> CopyMap | None:
    """The classifier of ``pairs`` and its calibration, or None when the pairs keep (almost) nothing.
    It reads the pairs alone, so it can run while the answer is still being sampled."""
    classifier = fit_copy_classifier(pairs, fit, generator=generator)
    if classifier is None:
        return None
    return CopyMap(classifier, fit_calibration(pairs, fit, generator=generator))


def apply_context_copy(samples: Sequence[Tensor], query: Tensor, fitted: CopyMap | None,
                       fit: CopyFit = CopyFit()) -> list[Tensor]:
    """Each sample ``(3, T, H, W)`` blended towards ``query`` fitted to its frames and size, by ``fitted``'s
    calibrated probability (see the module docstring); unchanged for None."""
    if fitted is None or not samples:
        return list(samples)
    shape = samples[0].shape
    guide = guide_frames(query.float()[None], shape[1], tuple(shape[-2:]))[0]
    logits = copy_logits(fitted.classifier, guide, fit.patch).clamp(-CLAMP, CLAMP)
    if fitted.calibration is not None:
        logits = fitted.calibration[0] * logits + fitted.calibration[1]
    p = torch.sigmoid(logits)[None]
    return [torch.lerp(sample.float(), guide.to(sample.device), p.to(sample.device)) for sample in samples]


def context_copy(samples: Sequence[Tensor], context: TaskContext, fit: CopyFit = CopyFit(), *,
                 generator: torch.Generator) -> list[Tensor]:
    """Each sample ``(3, T, H, W)`` of ``context``'s answer blended towards its query where the pairs
    keep their input: ``lerp(sample, query, p)`` (see the module docstring). One fit per context."""
    if not samples:
        return []
    return apply_context_copy(samples, context.query, fit_context_copy(context.pairs, fit, generator=generator), fit)

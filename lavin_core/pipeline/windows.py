"""Clips of any length: cut a long query into windows of the length the example pairs have.

The model predicts a target clip of the example targets' length ``L`` (``1 + 4k`` frames) from a
query of the example inputs' length. A query of another length ``N`` is handled here:

- ``N < L``: one window, padded at the end by repeating the last frame; the padding's
  predictions are dropped.
- ``N > L``: overlapping windows of ``L`` frames (``overlap`` frames shared, 1 by default; the
  last window is moved back to end on the last frame, as ``stvae.tiling.tile_starts`` places
  tiles). Windows run in order and each one after the first gets the previous window's query
  and prediction as one more example pair (SegGPT's long-video mode, which prompts each frame
  with the frames already segmented): the model sees how it answered the frames just before,
  which keeps its answers consistent from window to window. Frames predicted by two windows are
  blended with ``tiling.edge_ramp`` weights (a cross-fade).

This assumes frame-aligned targets, where target frame ``i`` answers query frame ``i`` (depth,
normals, masks of each frame; an image task run frame by frame when ``L = 1``). A task whose
target frames follow the query instead (``frame_prediction``, ``frame_aligned = False``) uses
the last ``L`` frames of a longer query (``last_frames``).

Memory stays bounded by one window: the encoder, the J-DiT and the decoder see ``L`` frames at a
time and only the stitched pixels of the whole clip are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from lavin_core.context import ExamplePair
from lavin_core.data.images import resize, to_pixels
from lavin_core.errors import LavinError
from lavin_core.stvae.tiling import edge_ramp, tile_starts


class WindowError(LavinError, ValueError):
    """A clip that cannot be cut into windows of the length the example pairs have."""


@attrs.frozen
class Window:
    """Frames ``[start, stop)`` of the clip, padded with ``pad`` copies of the last one to the window length."""

    start: int
    stop: int
    pad: int


def default_overlap(length: int) -> int:
    """Frames shared by neighbouring windows of ``length`` frames: 1 (0 for single frames)."""
    return 1 if length > 1 else 0


def plan_windows(num_frames: int, length: int, overlap: int | None = None) -> list[Window]:
    """The windows that cover ``num_frames`` frames with windows of ``length`` frames sharing ``overlap``.

    Every frame is in at least one window; neighbours share at least ``overlap`` frames (more
    where the last window is moved back). ``WindowError`` for an impossible request.
    """
    overlap = default_overlap(length) if overlap is None else overlap
    if num_frames < 1:
        raise WindowError(f"a clip needs at least one frame, got {num_frames}")
    if length < 1:
        raise WindowError(f"the window length must be at least one frame, got {length}")
    if not 0 <= overlap < length:
        raise WindowError(f"the window overlap must be in [0, {length - 1}] for windows of {length} frames, got {overlap}")
    if num_frames <= length:
        return [Window(0, num_frames, length - num_frames)]
    return [Window(start, start + length, 0) for start in tile_starts(num_frames, length, overlap)]


def window_weights(windows: Sequence[Window]) -> list[Tensor]:
    """Blend weights ``(stop - start,)`` of each window's real frames (see ``tiling.edge_ramp``)."""
    weights = []
    for index, window in enumerate(windows):
        size = window.stop - window.start
        before = windows[index - 1].stop - window.start if index > 0 else 0
        after = window.stop - windows[index + 1].start if index + 1 < len(windows) else 0
        weights.append(edge_ramp(size, before, left=before > 0, right=False)
                       * edge_ramp(size, after, left=False, right=after > 0))
    return weights


def window_pixels(clip: Tensor, window: Window) -> Tensor:
    """Frames of ``window`` from ``clip`` ``(3, T, H, W)``, padded by repeating the last frame."""
    frames = clip[:, window.start:window.stop]
    if window.pad:
        frames = torch.cat([frames, frames[:, -1:].expand(-1, window.pad, -1, -1)], dim=1)
    return frames


def last_frames(clip: Tensor, length: int, what: str = "the query") -> Tensor:
    """The last ``length`` frames of ``clip`` ``(3, T, H, W)``; ``WindowError`` if it has fewer."""
    if clip.shape[1] < length:
        raise WindowError(f"{what} has {clip.shape[1]} frames but the example inputs have {length}; "
                          f"give a query of at least {length} frames")
    return clip[:, clip.shape[1] - length:]


def predict_windows(
    predict: Callable[[list[ExamplePair], Tensor], Tensor],
    pairs: Sequence[ExamplePair],
    query: Tensor,
    *,
    overlap: int | None = None,
    carry: bool = True,
    on_window: Callable[[int, int], None] | None = None,
) -> Tensor:
    """The prediction ``(3, N, H, W)`` for a query clip ``(3, N, H, W)`` of any length ``N``.

    ``predict(pairs, query)`` returns the target pixels ``(3, L, H, W)`` for a query of the
    pairs' length ``L`` (a pipeline call, with its sampling options and ensembles; the pairs may
    be of another height and width than the query: the pipeline resizes them).
    ``carry``: give each window the previous one's query and prediction as an extra pair.
    ``on_window(index, count)`` is called before each window (progress).
    """
    if not pairs:
        raise WindowError("windows need at least one example pair: their length sets the window length")
    length = pairs[0].input.shape[1]
    if pairs[0].target.shape[1] != length:
        raise WindowError(f"the example inputs have {length} frames but their targets "
                          f"{pairs[0].target.shape[1]}; windows need targets that match their inputs frame by frame")
    windows = plan_windows(query.shape[1], length, overlap)
    weights = window_weights(windows)
    out = weight_sum = None
    previous: ExamplePair | None = None
    for index, (window, weight) in enumerate(zip(windows, weights)):
        if on_window is not None:
            on_window(index, len(windows))
        frames = window_pixels(query, window)
        context_pairs = [*pairs, previous] if previous is not None else list(pairs)
        prediction = predict(context_pairs, frames).float()
        if out is None:
            out = prediction.new_zeros((prediction.shape[0], query.shape[1], *prediction.shape[2:]))
            weight_sum = prediction.new_zeros(query.shape[1])
        real = window.stop - window.start
        out[:, window.start:window.stop] += prediction[:, :real] * weight[None, :, None, None]
        weight_sum[window.start:window.stop] += weight
        if carry and len(windows) > 1:
            previous = ExamplePair(input=frames, target=prediction.clamp(-1, 1))
    return out / weight_sum[None, :, None, None]


def predict_clip(
    predict: Callable[[list[ExamplePair], Tensor], Tensor],
    pairs: Sequence[ExamplePair],
    query: Tensor,
    *,
    frame_aligned: bool = True,
    overlap: int | None = None,
    carry: bool = True,
    on_window: Callable[[int, int], None] | None = None,
) -> Tensor:
    """The prediction for a query ``(3, N, H, W)`` of any length, given pairs of length ``L``.

    ``N == L``: one call. Otherwise, with ``frame_aligned`` targets, ``predict_windows``; for a
    task whose targets follow the query (``frame_aligned=False``), the last ``L`` frames of the
    query are its context (``last_frames``). ``predict`` is as in ``predict_windows``.
    """
    length = pairs[0].input.shape[1] if pairs else query.shape[1]
    if query.shape[1] == length:
        return predict(list(pairs), query)
    if not frame_aligned:
        return predict(list(pairs), last_frames(query, length))
    return predict_windows(predict, pairs, query, overlap=overlap, carry=carry, on_window=on_window)


def pipeline_clip(pipe, pairs: Sequence[ExamplePair | tuple[Any, Any]], query: Any, *,
                  overlap: int | None = None, carry: bool = True, **options: Any) -> Tensor:
    """``pipe``'s prediction ``(3, N, H, W)`` for a query clip of any length ``N``, in windows.

    ``pairs`` and ``query`` take any form ``images.to_pixels`` / ``read_clip`` take (a path of a
    clip of any length too); the pairs are resized to the query's size. ``options`` go to every
    pipeline call (``num_steps``, ``guidance_scale``, ``generator``, ...).
    """
    query = to_pixels(query, what="query", any_length=True)
    size = tuple(query.shape[-2:])
    built = []
    for index, pair in enumerate(pairs):
        source, target = (pair.input, pair.target) if isinstance(pair, ExamplePair) else pair
        built.append(ExamplePair(input=resize(to_pixels(source, what=f"pairs[{index}].input"), size),
                                 target=resize(to_pixels(target, what=f"pairs[{index}].target"), size)))
    options.setdefault("progress", False)
    return predict_clip(lambda pairs, frames: pipe(pairs=pairs, query=frames, **options).predictions[0], built, query,
                        overlap=overlap, carry=carry)

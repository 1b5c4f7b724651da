"""Colour codes that turn task answers into pixels a model can generate, and back.

- ``encode_scalar`` / ``decode_scalar``: a value in [0, 1] as a point on a path along seven edges
  of the RGB cube (black, blue, cyan, green, yellow, red, magenta, white). With 8-bit colour that
  is 7 x 255 distinguishable levels, and decoding projects onto the nearest point of the path, so
  a slightly wrong colour gives a slightly wrong value rather than garbage.
- ``CODE_COLORS`` / ``nearest_code``: well-separated flat colours for labels and keypoints;
  ``distinct_colors`` draws a palette of them (renderings drawn per context).

Colours here are RGB floats in [0, 1]; ``(..., 3)`` arrays.
"""

from __future__ import annotations

import itertools

import numpy as np

#: The vertices of the scalar colour path; consecutive ones differ in one channel.
SCALAR_PATH = np.array(
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1]], dtype=np.float64
)
_SEGMENTS = len(SCALAR_PATH) - 1


def encode_scalar(values: np.ndarray, path: np.ndarray = SCALAR_PATH) -> np.ndarray:
    """``(...,)`` values in [0, 1] (clipped) to ``(..., 3)`` colours on ``path`` ``(K, 3)``, each of
    its ``K - 1`` segments covering an equal share of [0, 1]."""
    path = np.asarray(path, np.float64)
    segments = len(path) - 1
    position = np.clip(np.asarray(values, np.float64), 0, 1) * segments
    segment = np.minimum(np.floor(position).astype(int), segments - 1)
    fraction = (position - segment)[..., None]
    return (path[segment] * (1 - fraction) + path[segment + 1] * fraction).astype(np.float32)


def decode_scalar(colors: np.ndarray, path: np.ndarray = SCALAR_PATH) -> np.ndarray:
    """``(..., 3)`` colours to the ``(...,)`` values in [0, 1] of their nearest points on ``path``."""
    path = np.asarray(path, np.float64)
    colors = np.asarray(colors, np.float64)
    starts, ends = path[:-1], path[1:]  # (K - 1, 3)
    offsets = colors[..., None, :] - starts  # (..., K - 1, 3)
    direction = ends - starts
    u = np.clip((offsets * direction).sum(-1) / (direction * direction).sum(-1), 0, 1)  # (..., K - 1)
    distance = np.linalg.norm(offsets - u[..., None] * direction, axis=-1)
    best = distance.argmin(-1)
    chosen = np.take_along_axis(u, best[..., None], -1)[..., 0]
    return ((best + chosen) / (len(path) - 1)).astype(np.float32)


def distinct_colors(rng: np.random.Generator, count: int, codes: np.ndarray) -> np.ndarray:
    """``count`` different colours of ``codes`` ``(K, 3)`` in a random order: a palette drawn per context."""
    if not 0 < count <= len(codes):
        raise ValueError(f"cannot draw {count} distinct colours from {len(codes)} codes")
    return np.asarray(codes, np.float32)[rng.permutation(len(codes))[:count]]


def palette_tuple(colors: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """``(K, 3)`` colours as nested tuples: a task attribute whose ``repr`` is short and exact
    (the latent cache fingerprints a task by its ``repr``)."""
    return tuple(tuple(float(c) for c in color) for color in np.asarray(colors))


def _code_colors() -> np.ndarray:
    levels = (0.0, 1.0, 0.5)
    grid = [c for c in itertools.product(levels, repeat=3) if c != (0.0, 0.0, 0.0) and c != (0.5, 0.5, 0.5)]
    # pure colours (only 0s and 1s) first: they are the furthest apart
    grid.sort(key=lambda c: (sum(v == 0.5 for v in c), c))
    return np.array(grid, dtype=np.float32)


#: 25 flat colours at least 0.5 apart in every differing channel; never black (the background)
#: nor mid grey (used for lines that carry no label).
CODE_COLORS = _code_colors()
#: The two disjoint pools that renderings drawn per context take their colours from: training
#: palettes use ``TRAINING_COLORS``; the held-out re-renderings use ``UNSEEN_COLORS`` only.
TRAINING_COLORS = CODE_COLORS[::2]
UNSEEN_COLORS = CODE_COLORS[1::2]
BACKGROUND = np.zeros(3, np.float32)
LINE_GREY = np.full(3, 0.5, np.float32)


def nearest_code(colors: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``(..., 3)`` colours: index of the nearest of ``codes`` ``(K, 3)`` and the distance to it."""
    distance = np.linalg.norm(np.asarray(colors, np.float64)[..., None, :] - codes, axis=-1)
    index = distance.argmin(-1)
    return index, np.take_along_axis(distance, index[..., None], -1)[..., 0]

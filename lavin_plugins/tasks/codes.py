"""Colour codes that turn task answers into pixels a model can generate, and back.

- ``encode_scalar`` / ``decode_scalar``: a value in [0, 1] as a point on a path along seven edges
  of the RGB cube (black, blue, cyan, green, yellow, red, magenta, white). With 8-bit colour that
  is 7 x 255 distinguishable levels, and decoding projects onto the nearest point of the path, so
  a slightly wrong colour gives a slightly wrong value rather than garbage.
- ``CODE_COLORS`` / ``nearest_code``: well-separated flat colours for labels and keypoints.

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


def encode_scalar(values: np.ndarray) -> np.ndarray:
    """``(...,)`` values in [0, 1] (clipped) to ``(..., 3)`` colours on the path."""
    position = np.clip(np.asarray(values, np.float64), 0, 1) * _SEGMENTS
    segment = np.minimum(np.floor(position).astype(int), _SEGMENTS - 1)
    fraction = (position - segment)[..., None]
    return (SCALAR_PATH[segment] * (1 - fraction) + SCALAR_PATH[segment + 1] * fraction).astype(np.float32)


def decode_scalar(colors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` colours to the ``(...,)`` values in [0, 1] of their nearest points on the path."""
    colors = np.asarray(colors, np.float64)
    starts, ends = SCALAR_PATH[:-1], SCALAR_PATH[1:]  # (7, 3)
    offsets = colors[..., None, :] - starts  # (..., 7, 3)
    direction = ends - starts  # unit length: each segment is one cube edge
    u = np.clip((offsets * direction).sum(-1), 0, 1)  # (..., 7)
    distance = np.linalg.norm(offsets - u[..., None] * direction, axis=-1)
    best = distance.argmin(-1)
    chosen = np.take_along_axis(u, best[..., None], -1)[..., 0]
    return ((best + chosen) / _SEGMENTS).astype(np.float32)


def _code_colors() -> np.ndarray:
    levels = (0.0, 1.0, 0.5)
    grid = [c for c in itertools.product(levels, repeat=3) if c != (0.0, 0.0, 0.0) and c != (0.5, 0.5, 0.5)]
    # pure colours (only 0s and 1s) first: they are the furthest apart
    grid.sort(key=lambda c: (sum(v == 0.5 for v in c), c))
    return np.array(grid, dtype=np.float32)


#: 25 flat colours at least 0.5 apart in every differing channel; never black (the background)
#: nor mid grey (used for lines that carry no label).
CODE_COLORS = _code_colors()
BACKGROUND = np.zeros(3, np.float32)
LINE_GREY = np.full(3, 0.5, np.float32)


def nearest_code(colors: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``(..., 3)`` colours: index of the nearest of ``codes`` ``(K, 3)`` and the distance to it."""
    distance = np.linalg.norm(np.asarray(colors, np.float64)[..., None, :] - codes, axis=-1)
    index = distance.argmin(-1)
    return index, np.take_along_axis(distance, index[..., None], -1)[..., 0]

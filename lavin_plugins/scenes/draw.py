"""Rasterise discs, thick segments and rectangle outlines into ``(H, W, C)`` arrays, in place.

Coordinates are ``(x, y)`` in pixels with pixel centres at integer + 0.5 (pixel ``(row, col)``
covers ``[col, col + 1) x [row, row + 1)``). No anti-aliasing: a pixel is painted when its centre
is inside the shape, which keeps colours exact so drawn answers can be read back.
"""

from __future__ import annotations

import numpy as np


def _window(canvas: np.ndarray, x_min: float, y_min: float, x_max: float, y_max: float):
    height, width = canvas.shape[:2]
    c0, c1 = max(int(np.floor(x_min)), 0), min(int(np.ceil(x_max)) + 1, width)
    r0, r1 = max(int(np.floor(y_min)), 0), min(int(np.ceil(y_max)) + 1, height)
    ys, xs = np.mgrid[r0:r1, c0:c1] + 0.5
    return (slice(r0, r1), slice(c0, c1)), xs, ys


def segment_distance(xs: np.ndarray, ys: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance from each point ``(xs, ys)`` to the segment ``start``-``end``."""
    direction = end - start
    length2 = max(float(direction @ direction), 1e-12)
    u = np.clip(((xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]) / length2, 0, 1)
    return np.hypot(xs - start[0] - u * direction[0], ys - start[1] - u * direction[1])


def draw_segment(canvas: np.ndarray, start, end, width: float, color) -> np.ndarray:
    """Paint every pixel within ``width / 2`` of the segment; returns ``canvas``."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    radius = width / 2
    box, xs, ys = _window(
        canvas,
        min(start[0], end[0]) - radius,
        min(start[1], end[1]) - radius,
        max(start[0], end[0]) + radius,
        max(start[1], end[1]) + radius,
    )
    inside = segment_distance(xs, ys, start, end) <= radius
    canvas[box][inside] = color
    return canvas


def draw_disc(canvas: np.ndarray, center, radius: float, color) -> np.ndarray:
    return draw_segment(canvas, center, center, 2 * radius, color)


def draw_box_outline(canvas: np.ndarray, box, thickness: int, color) -> np.ndarray:
    """Paint the ``thickness``-pixel border just inside the integer box ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    canvas[y0:y1, x0 : x0 + thickness] = color
    canvas[y0:y1, max(x1 - thickness, x0) : x1] = color
    canvas[y0 : y0 + thickness, x0:x1] = color
    canvas[max(y1 - thickness, y0) : y1, x0:x1] = color
    return canvas

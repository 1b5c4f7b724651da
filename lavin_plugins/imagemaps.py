"""Procedural image-to-image maps: the tasks a model can only solve by reading its examples.

Each map is a pure function ``apply(image, **params)`` of an ``(H, W, 3)`` float32 image in
[0, 1] (result clipped to [0, 1]) and a ``draw(rng)`` of its hidden parameters (small tuples and
floats, so that a task's ``repr`` names them exactly). ``MAPS`` holds them by name, each with its
family; ``HELD_OUT_FAMILIES`` are the families training never sees.

Families: ``colour`` (channel permutation and inversion, colour mixing, hue rotation,
saturation), ``tone`` (gamma, contrast, brightness), ``geometry`` (flips, quarter turns,
cyclic shifts, zoom), ``filter`` (blur, sharpening, gradient magnitude, pixelation),
``compose`` (two maps of different trained families in a row); held out: ``quantize``
(posterize, threshold, solarize), ``relief`` (emboss) and ``tint`` (duotone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` luminance of an ``(H, W, 3)`` image."""
    return (image @ LUMA).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``(H, W, C)`` with reflected borders."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    height, width = image.shape[:2]
    rows = sum(w * padded[i : i + height] for i, w in enumerate(taps))
    return sum(w * rows[:, i : i + width] for i, w in enumerate(taps)).astype(np.float32)


def _gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives ``(d/dx, d/dy)`` of ``(H, W)``, edges replicated."""
    p = np.pad(gray, 1, mode="edge")
    dx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:] - p[:-2, :-2] - 2 * p[1:-1, :-2] - p[2:, :-2]) / 4
    dy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:] - p[:-2, :-2] - 2 * p[:-2, 1:-1] - p[:-2, 2:]) / 4
    return dx, dy


def _grey(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def _random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], 3))


# ---------------------------------------------------------------------------------------------
# colour


def channel_permute(image, *, order):
    return image[..., list(order)]


def draw_channel_permute(rng):
    orders = [o for o in ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))]
    return {"order": orders[rng.integers(len(orders))]}


def channel_invert(image, *, channels):
    out = image.copy()
    out[..., list(channels)] = 1 - out[..., list(channels)]
    return out


def draw_channel_invert(rng):
    subsets = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    return {"channels": subsets[rng.integers(len(subsets))]}


def colour_mix(image, *, matrix):
    return image @ np.array(matrix, np.float32).T


def draw_colour_mix(rng):
    weights = rng.dirichlet(np.full(3, 0.7), size=3)  # each output channel a convex mix of the inputs
    return {"matrix": tuple(tuple(round(float(w), 3) for w in row) for row in weights)}


def hue_rotate(image, *, degrees):
    # rotation about the grey axis of RGB space keeps luminance roughly and turns hue
    angle = np.radians(degrees)
    axis = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
    return (image @ rotation.T.astype(np.float32)).astype(np.float32)


def draw_hue_rotate(rng):
    return {"degrees": round(float(rng.uniform(45, 315)), 1)}


def saturation(image, *, factor):
    gray = luma(image)[..., None]
    return gray + factor * (image - gray)


def draw_saturation(rng):
    return {"factor": round(float(rng.choice([rng.uniform(0.0, 0.4), rng.uniform(1.8, 3.0)])), 2)}


# ---------------------------------------------------------------------------------------------
# tone


def gamma(image, *, exponent):
    return np.power(np.clip(image, 0, 1), exponent)


def draw_gamma(rng):
    return {"exponent": round(float(rng.choice([rng.uniform(0.3, 0.6), rng.uniform(1.7, 3.0)])), 2)}


def contrast(image, *, factor, pivot):
    return pivot + factor * (image - pivot)


def draw_contrast(rng):
    return {"factor": round(float(rng.choice([rng.uniform(0.3, 0.6), rng.uniform(1.6, 2.5)])), 2),
            "pivot": round(float(rng.uniform(0.3, 0.7)), 2)}


def brightness(image, *, offset):
    return image + offset


def draw_brightness(rng):
    return {"offset": round(float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.35)), 2)}


# ---------------------------------------------------------------------------------------------
# geometry


def flip(image, *, axis):
    return {"horizontal": image[:, ::-1], "vertical": image[::-1], "transpose": image.transpose(1, 0, 2)}[axis]


def draw_flip(rng):
    return {"axis": ("horizontal", "vertical", "transpose")[rng.integers(3)]}


def rotate90(image, *, turns):
    return np.rot90(image, turns, axes=(0, 1))


def draw_rotate90(rng):
    return {"turns": int(rng.integers(1, 4))}


def shift(image, *, dy, dx):
    # fractions of the side, so that a context's shift is the same at every size
    height, width = image.shape[:2]
    return np.roll(image, (round(dy * height), round(dx * width)), axis=(0, 1))


def draw_shift(rng):
    dy, dx = 0.0, 0.0
    while abs(dy) < 0.1 and abs(dx) < 0.1:
        dy, dx = (round(float(v), 3) for v in rng.uniform(-0.5, 0.5, 2))
    return {"dy": dy, "dx": dx}


def zoom(image, *, scale, cy, cx):
    height, width = image.shape[:2]
    ys = np.clip(((np.arange(height) + 0.5 - height / 2) / scale + cy * height).astype(int), 0, height - 1)
    xs = np.clip(((np.arange(width) + 0.5 - width / 2) / scale + cx * width).astype(int), 0, width - 1)
    return image[ys][:, xs]


def draw_zoom(rng):
    scale = float(rng.uniform(1.4, 2.5))
    margin = 0.5 / scale
    return {"scale": round(scale, 2), "cy": round(float(rng.uniform(margin, 1 - margin)), 3),
            "cx": round(float(rng.uniform(margin, 1 - margin)), 3)}


# ---------------------------------------------------------------------------------------------
# filter


def blur(image, *, sigma):
    return gaussian_blur(image, sigma * image.shape[0] / 64)


def draw_blur(rng):
    return {"sigma": round(float(rng.uniform(1.0, 3.0)), 2)}


def sharpen(image, *, amount):
    return image + amount * (image - gaussian_blur(image, image.shape[0] / 64))


def draw_sharpen(rng):
    return {"amount": round(float(rng.uniform(1.0, 3.0)), 2)}


def gradient_magnitude(image, *, gain):
    dx, dy = _gradients(luma(image))
    return _grey(gain * np.hypot(dx, dy))


def draw_gradient_magnitude(rng):
    return {"gain": round(float(rng.uniform(2.0, 5.0)), 2)}


def pixelate(image, *, block):
    height, width = image.shape[:2]
    b = max(1, round(block * height / 64))
    coarse = image[: height - height % b or height, : width - width % b or width]
    coarse = coarse.reshape(coarse.shape[0] // b, b, coarse.shape[1] // b, b, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(coarse, b, axis=0), b, axis=1)[:height, :width]


def draw_pixelate(rng):
    return {"block": int(rng.choice([4, 8]))}


# ---------------------------------------------------------------------------------------------
# held out: quantize, relief, tint


def posterize(image, *, levels):
    return np.round(image * (levels - 1)) / (levels - 1)


def draw_posterize(rng):
    return {"levels": int(rng.integers(2, 5))}


def threshold(image, *, level, dark, light):
    return np.where((luma(image) > level)[..., None], np.float32(light), np.float32(dark))


def draw_threshold(rng):
    dark = _random_colour(rng)
    light = dark
    while np.abs(np.subtract(light, dark)).max() < 0.5:
        light = _random_colour(rng)
    return {"level": round(float(rng.uniform(0.3, 0.7)), 2), "dark": dark, "light": light}


def solarize(image, *, level):
    return np.where(image > level, 1 - image, image)


def draw_solarize(rng):
    return {"level": round(float(rng.uniform(0.3, 0.7)), 2)}


def emboss(image, *, degrees, gain):
    dx, dy = _gradients(luma(image))
    angle = np.radians(degrees)
    return _grey(0.5 + gain * (np.cos(angle) * dx + np.sin(angle) * dy))


def draw_emboss(rng):
    return {"degrees": round(float(rng.uniform(0, 360)), 1), "gain": round(float(rng.uniform(1.5, 3.0)), 2)}


def duotone(image, *, dark, light):
    return np.float32(dark) + luma(image)[..., None] * (np.float32(light) - np.float32(dark))


def draw_duotone(rng):
    drawn = draw_threshold(rng)
    return {"dark": drawn["dark"], "light": drawn["light"]}


# ---------------------------------------------------------------------------------------------
# the table


@attrs.frozen
class ImageMap:
    """One map: its family, its ``apply(image, **params)`` and ``draw(rng) -> params``."""

    family: str
    apply: Callable[..., np.ndarray]
    draw: Callable[[np.random.Generator], dict[str, Any]]


def _entry(family: str, function: Callable) -> ImageMap:
    return ImageMap(family=family, apply=function, draw=globals()[f"draw_{function.__name__}"])


MAPS: dict[str, ImageMap] = {
    function.__name__: _entry(family, function)
    for family, functions in {
        "colour": (channel_permute, channel_invert, colour_mix, hue_rotate, saturation),
        "tone": (gamma, contrast, brightness),
        "geometry": (flip, rotate90, shift, zoom),
        "filter": (blur, sharpen, gradient_magnitude, pixelate),
        "quantize": (posterize, threshold, solarize),
        "relief": (emboss,),
        "tint": (duotone,),
    }.items()
    for function in functions
}

#: Whole families training never sees: the held-out maps.
HELD_OUT_FAMILIES = ("quantize", "relief", "tint")
#: The maps a composition draws from: trained families only.
COMPOSABLE = tuple(name for name, entry in MAPS.items() if entry.family not in HELD_OUT_FAMILIES)


def apply_map(name: str, image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """``MAPS[name]`` applied to ``image`` with ``params``, clipped to [0, 1], float32 and contiguous."""
    out = MAPS[name].apply(np.asarray(image, np.float32), **params)
    return np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32)


def draw_composition(rng: np.random.Generator) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Two maps of different trained families, each with its parameters, applied first to last."""
    first = COMPOSABLE[rng.integers(len(COMPOSABLE))]
    others = [n for n in COMPOSABLE if MAPS[n].family != MAPS[first].family]
    second = others[rng.integers(len(others))]
    return tuple((name, MAPS[name].draw(rng)) for name in (first, second))

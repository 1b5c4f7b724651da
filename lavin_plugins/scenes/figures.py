"""Articulated 2D stick figures with exact keypoints, for pose estimation.

A figure is a forward-kinematics chain: a pelvis position and torso angle, then an angle per
limb segment. ``random_figure`` draws a pose whose keypoints lie inside the image and at least
``min_separation`` pixels apart, so each keypoint stays visible when drawn as a disc.
"""

from __future__ import annotations

import attrs
import numpy as np

from lavin_plugins.scenes.draw import draw_disc, draw_segment

KEYPOINTS = (
    "head", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
)  # fmt: skip
#: Pairs of keypoint indices joined by a limb.
LIMBS = (
    (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (8, 11), (2, 5),
)  # fmt: skip


@attrs.frozen(kw_only=True)
class StickFigure:
    keypoints: np.ndarray  # (14, 2) float (x, y) pixels
    color: np.ndarray  # (3,) RGB in [0, 1]
    thickness: float  # limb width in pixels


def _pose_keypoints(rng: np.random.Generator, center: np.ndarray, height: float) -> np.ndarray:
    """Forward kinematics for one random pose; ``height`` is the figure's head-to-ankle size in pixels."""
    unit = height / 7.0
    lean = rng.uniform(-0.35, 0.35)  # torso angle from vertical, radians
    up = np.array([np.sin(lean), -np.cos(lean)])  # image y grows downwards
    side = np.array([-up[1], up[0]])
    pelvis = center - 0.2 * unit * up  # centres the figure: 3.6 units above the pelvis, 3.2 below
    neck = pelvis + 2.6 * unit * up
    head = neck + 1.0 * unit * np.array([np.sin(lean + rng.uniform(-0.4, 0.4)), -np.cos(lean)])
    points = {"head": head, "neck": neck}

    def chain(start: np.ndarray, base_angle: float, lengths: tuple[float, float], bends: tuple[float, float]):
        angle = base_angle + rng.uniform(*bends[0])
        middle = start + lengths[0] * unit * np.array([np.sin(angle), np.cos(angle)])
        angle += rng.uniform(*bends[1])
        return middle, middle + lengths[1] * unit * np.array([np.sin(angle), np.cos(angle)])

    for sign, name in ((1.0, "right"), (-1.0, "left")):
        shoulder = neck + sign * 1.1 * unit * side
        hip = pelvis + sign * 0.7 * unit * side
        elbow, wrist = chain(shoulder, lean + sign * 0.4, (1.3, 1.2), ((-1.2, 1.6), (-1.5, 1.5)))
        knee, ankle = chain(hip, lean + sign * 0.15, (1.6, 1.6), ((-0.5, 0.7), (-0.9, 0.3)))
        points.update({
            f"{name}_shoulder": shoulder, f"{name}_elbow": elbow, f"{name}_wrist": wrist,
            f"{name}_hip": hip, f"{name}_knee": knee, f"{name}_ankle": ankle,
        })  # fmt: skip
    return np.stack([points[name] for name in KEYPOINTS])


def random_figure(
    rng: np.random.Generator, height: int, width: int, *, min_separation: float = 5.0, margin: float = 3.0
) -> StickFigure:
    """A random pose inside an ``height x width`` image; raises ``ValueError`` if the image is too small."""
    if min(height, width) < 32:
        raise ValueError(f"stick figures need an image of at least 32x32 pixels, got {height}x{width}")
    for _ in range(200):
        size = rng.uniform(0.6, 0.85) * height
        center = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.45, 0.55) * height])
        keypoints = _pose_keypoints(rng, center, size)
        inside = np.all((keypoints >= margin) & (keypoints <= np.array([width, height]) - margin))
        gaps = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1)[np.triu_indices(len(KEYPOINTS), 1)]
        if inside and gaps.min() >= min_separation:
            color = np.clip(rng.uniform(0.0, 1.0, 3) * 0.5 + 0.5 * (rng.uniform() > 0.5), 0, 1)
            return StickFigure(keypoints=keypoints, color=color, thickness=max(1.5, height / 40))
    raise ValueError(f"could not place a stick figure {min_separation} px apart in {height}x{width}; use a larger size")


def draw_figure(canvas: np.ndarray, figure: StickFigure) -> np.ndarray:
    """Paint the figure's limbs and a head disc onto ``canvas`` ``(H, W, 3)``; returns ``canvas``."""
    for a, b in LIMBS:
        draw_segment(canvas, figure.keypoints[a], figure.keypoints[b], figure.thickness, figure.color)
    draw_disc(canvas, figure.keypoints[0], figure.thickness * 1.8, figure.color)
    return canvas

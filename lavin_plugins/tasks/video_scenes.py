"""Video tasks on moving scenes with an exact answer for every frame: depth, normals and
foreground masks of a clip, and the other way, a shaded clip generated from a depth clip.

Every task renders ``frames`` frames (``1 + 4k``, 5 by default) of one scene whose shapes move
(``random_scene(moving=True)``, ``Scene.at``); the answer holds one exact map per frame, and
each task scores the usual per-frame metric plus a temporal one (``metrics.temporal_error`` /
``metrics.temporal_flicker``): the error of the frame-to-frame changes against the truth's, so
an answer that flickers scores worse even when each frame alone is as good.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lavin_core.context import TEMPORAL_STRIDE
from lavin_core.ensemble import mean_answer, unit_mean_answer
from lavin_plugins import metrics
from lavin_plugins.scenes import SceneRender, random_scene, render
from lavin_plugins.tasks.base import GeneratedTask, from_pixels, to_pixels
from lavin_plugins.tasks.codes import decode_scalar, encode_scalar
from lavin_plugins.tasks.normals import normals_of_colors

#: The light of ``depth_to_video``'s clay render, fixed in camera axes (x right, y up, z towards the viewer).
CLAY_LIGHT = np.array([0.4, 0.7, 0.6]) / np.linalg.norm([0.4, 0.7, 0.6])
CLAY_ALBEDO, CLAY_AMBIENT = 0.85, 0.25


class SceneClipTask(GeneratedTask):
    """A clip of ``frames`` frames of a moving scene; subclasses make the input and the answer of the renders."""

    def __init__(self, *, size: int | tuple[int, int] = 64, frames: int = 5):
        super().__init__(size=size)
        if not isinstance(frames, (int, np.integer)) or frames < 1 or (frames - 1) % TEMPORAL_STRIDE:
            raise ValueError(f"frames must be 1 + {TEMPORAL_STRIDE}k (1, 5, 9, ...), got {frames!r}")
        self.frames = int(frames)

    def views(self, rng: np.random.Generator) -> list[SceneRender]:
        scene = random_scene(rng, num_shapes=(1, 4), moving=True)
        return [render(scene.at(t), self.height, self.width) for t in range(self.frames)]

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        views = self.views(rng)
        return np.stack([self.input_of(v) for v in views]), np.stack([self.answer_of(v) for v in views])

    def input_of(self, view: SceneRender) -> np.ndarray:
        """One input frame ``(H, W, 3)`` in [0, 1]: the rendered colours."""
        return view.rgb

    @abc.abstractmethod
    def answer_of(self, view: SceneRender) -> np.ndarray:
        """One frame of the answer."""

    def check_frames(self, answer: np.ndarray) -> np.ndarray:
        answer = np.asarray(answer)
        if answer.ndim < 3:  # any frame count: a template or a window may be longer than ``frames``
            raise ValueError(f"{self.name}: an answer is a clip of maps (T, H, W, ...), got shape {answer.shape}")
        return answer


class VideoDepthTask(SceneClipTask):
    """Answer: depth ``(T, H, W)`` float32 in scene units, each frame drawn like ``depth``'s."""

    name: ClassVar[str] = "video_depth"
    description: ClassVar[str] = "depth of every frame of a clip of moving objects, as colour-coded depth maps"
    metrics: ClassVar[tuple[str, ...]] = ("abs_rel", "delta1", "temporal_error")
    higher_is_better: ClassVar[dict[str, bool]] = {"abs_rel": False, "delta1": True, "temporal_error": False}

    def __init__(self, *, size: int | tuple[int, int] = 64, frames: int = 5, max_depth: float = 10.0):
        super().__init__(size=size, frames=frames)
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0, got {max_depth}")
        self.max_depth = float(max_depth)

    def answer_of(self, view: SceneRender) -> np.ndarray:
        return np.minimum(view.depth, self.max_depth)

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(encode_scalar(self.check_frames(answer) / self.max_depth))

    def read(self, pixels: Tensor) -> np.ndarray:
        return decode_scalar(from_pixels(pixels)) * np.float32(self.max_depth)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            "abs_rel": metrics.per_frame(metrics.abs_rel, predicted, truth),
            "delta1": metrics.per_frame(metrics.delta1, predicted, truth),
            "temporal_error": metrics.temporal_error(predicted, truth),
        }

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled depth clips."""
        return mean_answer(answers)


class VideoNormalsTask(SceneClipTask):
    """Answer: unit normals ``(T, H, W, 3)`` in camera axes, drawn as RGB = (x, y, z) like ``normals``."""

    name: ClassVar[str] = "video_normals"
    description: ClassVar[str] = "surface normals of every frame of a clip, drawn as RGB = (x, y, z) in camera axes"
    metrics: ClassVar[tuple[str, ...]] = ("mean_angle", "within_11.25", "temporal_error")
    higher_is_better: ClassVar[dict[str, bool]] = {"mean_angle": False, "within_11.25": True, "temporal_error": False}

    def answer_of(self, view: SceneRender) -> np.ndarray:
        return view.normals

    def render(self, answer: np.ndarray) -> Tensor:
        vectors = np.clip(np.asarray(self.check_frames(answer), np.float32), -1, 1)  # already in the pixel range
        return torch.from_numpy(vectors).permute(3, 0, 1, 2).contiguous()

    def read(self, pixels: Tensor) -> np.ndarray:
        return normals_of_colors(from_pixels(pixels))

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            "mean_angle": metrics.mean_angular_error(predicted, truth),
            "within_11.25": metrics.fraction_within(predicted, truth, 11.25),
            "temporal_error": metrics.temporal_error(predicted, truth, vector=True),
        }

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled normal clips, scaled back to unit length."""
        return unit_mean_answer(answers)


class VideoSegmentationTask(SceneClipTask):
    """Answer: foreground masks ``(T, H, W)`` bool, True on the moving objects (white on black)."""

    name: ClassVar[str] = "video_segmentation"
    description: ClassVar[str] = "segment the moving objects of every frame of a clip: white masks on black"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "pixel_accuracy", "temporal_flicker")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "pixel_accuracy": True, "temporal_flicker": False}

    def answer_of(self, view: SceneRender) -> np.ndarray:
        return view.foreground

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(np.repeat(np.asarray(self.check_frames(answer), np.float32)[..., None], 3, axis=-1))

    def read(self, pixels: Tensor) -> np.ndarray:
        return from_pixels(pixels).mean(-1) > 0.5

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            "iou": metrics.per_frame(metrics.iou, predicted, truth),
            "pixel_accuracy": metrics.pixel_accuracy(predicted, truth),
            "temporal_flicker": metrics.temporal_flicker(predicted, truth),
        }


def clay_shading(normals: np.ndarray) -> np.ndarray:
    """``(..., 3)`` camera-space normals to grey ``(..., 3)`` colours in [0, 1]: one clay material
    lit by ``CLAY_LIGHT`` (Lambert plus ambient), so the colour follows from the geometry alone."""
    shade = CLAY_AMBIENT + (1 - CLAY_AMBIENT) * np.clip(np.asarray(normals) @ CLAY_LIGHT, 0, 1)
    return np.repeat((CLAY_ALBEDO * shade)[..., None], 3, axis=-1).astype(np.float32)


class DepthToVideoTask(SceneClipTask):
    """Generation the other way: a colour-coded depth clip in, the clip it shows out, rendered in
    one clay material under a fixed light (``clay_shading``) so that the answer is exact.
    Answer: ``(T, H, W, 3)`` float32 in [0, 1]."""

    name: ClassVar[str] = "depth_to_video"
    description: ClassVar[str] = "generate the shaded clip of a colour-coded depth clip (clay material, fixed light)"
    metrics: ClassVar[tuple[str, ...]] = ("psnr", "ssim", "temporal_error")
    higher_is_better: ClassVar[dict[str, bool]] = {"psnr": True, "ssim": True, "temporal_error": False}

    def __init__(self, *, size: int | tuple[int, int] = 64, frames: int = 5, max_depth: float = 10.0):
        super().__init__(size=size, frames=frames)
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0, got {max_depth}")
        self.max_depth = float(max_depth)

    def input_of(self, view: SceneRender) -> np.ndarray:
        return encode_scalar(np.minimum(view.depth, self.max_depth) / self.max_depth)

    def answer_of(self, view: SceneRender) -> np.ndarray:
        return clay_shading(view.normals)

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(self.check_frames(answer))

    def read(self, pixels: Tensor) -> np.ndarray:
        return from_pixels(pixels)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            "psnr": metrics.psnr(predicted, truth),
            "ssim": metrics.ssim(predicted, truth),
            "temporal_error": metrics.temporal_error(predicted, truth, vector=True),
        }

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled clips (the MSE-optimal consensus)."""
        return mean_answer(answers)


#: The video tasks of this module, in the order tables show them.
VIDEO_SCENE_TASKS = (VideoDepthTask, VideoNormalsTask, VideoSegmentationTask, DepthToVideoTask)

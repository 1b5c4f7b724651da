"""Pixels in and out: user images to ``(3, T, H, W)`` float tensors in [-1, 1], and back.

Accepted inputs (``to_pixels``):

- ``torch.Tensor``: float in [-1, 1] or uint8 in [0, 255], ``(3, H, W)`` or ``(3, T, H, W)``;
- ``PIL.Image.Image``: any mode, converted to RGB;
- ``numpy.ndarray``: ``(H, W, 3)`` or ``(T, H, W, 3)`` (or grey ``(H, W)``), uint8 in [0, 255]
  or float in [0, 1] (the numpy/scikit-image convention);
- a path or fsspec URL (``str`` / ``os.PathLike``) of an image file PIL can read (PNG, JPEG, ...),
  of a clip (MP4 and the other ffmpeg formats with the ``video`` extra, animated GIF, animated
  PNG: every frame, see ``lavin_core.data.video``) or of a folder of frames;
- a list or tuple of any of these single images: the frames of a clip.

``read_clip`` reads a clip file of any length with its frame rate (``to_pixels`` insists on the
``1 + 4k`` frames the model takes). Outputs: ``to_pil`` (one image per frame), ``to_uint8``
(``(T, H, W, 3)`` arrays) and ``save_image`` (PNG, GIF, APNG or MP4 by the extension).
"""

from __future__ import annotations

import io
import os
from typing import Any

import attrs
import fsspec
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F

from lavin_core.context import check_pixels
from lavin_core.data import video
from lavin_core.errors import LavinError


class ImageError(LavinError, ValueError):
    """An image that is missing, unreadable, or of a kind or size that cannot be used."""


# ---------------------------------------------------------------------------------------------
# reading


def read_image(url: str | os.PathLike) -> Image.Image:
    """The RGB image in the file at a local path or fsspec URL; ``ImageError`` if missing or unreadable."""
    url = os.fspath(url)
    try:
        with fsspec.open(url, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(f"no image file at {url}") from None
    except (IsADirectoryError, PermissionError, OSError) as err:
        raise ImageError(f"cannot read {url}: {err.strerror or err}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageError(f"{url} is not a readable image (PNG, JPEG, ...): {err}") from None


@attrs.frozen
class Clip:
    """A clip as read from a file: pixels ``(3, T, H, W)`` in [-1, 1] (any ``T``) and its frame
    rate (None when the source has none: a still image or a frame folder)."""

    pixels: Tensor
    fps: float | None

    @property
    def num_frames(self) -> int:
        return self.pixels.shape[1]


def read_clip(url: str | os.PathLike) -> Clip:
    """Every frame of the image, clip or frame folder at ``url``, with its frame rate.

    ``ImageError`` (one line) when it is missing, unreadable, empty or mixes frame sizes.
    """
    try:
        frames = video.read_frames(url)
    except video.ClipError as err:
        raise ImageError(str(err)) from None
    return Clip(_from_uint8_hwc(frames.array), frames.fps)


def _from_uint8_hwc(array: np.ndarray) -> Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(3, T, H, W)`` float32 in [-1, 1]."""
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def _from_numpy(array: np.ndarray, what: str) -> Tensor:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (3, 4):
        raise ImageError(f"{what}: a numpy image must be (H, W, 3) or (T, H, W, 3), got shape {array.shape}")
    array = array[..., :3]  # drop alpha
    if array.dtype == np.uint8:
        return _from_uint8_hwc(array)
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0 or not np.isfinite([low, high]).all():
            raise ImageError(
                f"{what}: a float numpy image must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]"
            )
        return torch.from_numpy(np.array(array, dtype=np.float32)).permute(3, 0, 1, 2) * 2.0 - 1.0
    raise ImageError(f"{what}: a numpy image must be uint8 or float, got dtype {array.dtype}")


def _from_tensor(tensor: Tensor, what: str) -> Tensor:
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 4 or tensor.shape[0] != 3:
        raise ImageError(f"{what}: a tensor image must be (3, H, W) or (3, T, H, W), got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.float() / 127.5 - 1.0
    if not tensor.is_floating_point():
        raise ImageError(f"{what}: a tensor image must be float in [-1, 1] or uint8, got dtype {tensor.dtype}")
    return tensor


def _single(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return _from_tensor(value, what)
    if isinstance(value, Image.Image):
        return _from_uint8_hwc(np.asarray(value.convert("RGB"))[None])
    if isinstance(value, np.ndarray):
        return _from_numpy(value, what)
    if isinstance(value, (str, os.PathLike)):
        return read_clip(value).pixels
    raise ImageError(
        f"{what}: cannot use a {type(value).__name__} as an image; pass a tensor, PIL image, "
        f"numpy array, file path or URL, or a list of them for a clip"
    )


def to_pixels(value: Any, *, what: str = "image", any_length: bool = False) -> Tensor:
    """Pixels ``(3, T, H, W)`` float32 in [-1, 1] from any accepted input (see the module docstring).

    ``what`` names the input in error messages (e.g. ``"query"``). The result is checked with
    ``context.check_pixels``: a clip must have ``1 + 4k`` frames, unless ``any_length`` (a long
    query that ``pipeline.windows`` will cut to the model's lengths).
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ImageError(f"{what}: an empty list has no frames")
        frames = [_single(frame, f"{what}[{index}]") for index, frame in enumerate(value)]
        if any(frame.shape[1] != 1 for frame in frames):
            raise ImageError(f"{what}: a list of frames must hold single images, not clips")
        shapes = {tuple(frame.shape[2:]) for frame in frames}
        if len(shapes) > 1:
            raise ImageError(f"{what}: the frames of a clip must share one size, got {sorted(shapes)}")
        pixels = torch.cat(frames, dim=1)
    else:
        pixels = _single(value, what)
    pixels = pixels.float()
    try:
        if any_length:  # every check but the frame count: the frames as one tall image
            check_pixels(pixels.reshape(3, 1, -1, pixels.shape[-1]), what)
            return pixels
        return check_pixels(pixels, what)
    except ValueError as err:
        raise ImageError(str(err)) from None


# ---------------------------------------------------------------------------------------------
# sizes


def fit_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The size nearest to ``height`` x ``width`` whose sides are positive multiples of ``multiple``."""
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    return (max(multiple, round(height / multiple) * multiple), max(multiple, round(width / multiple) * multiple))


def processing_shape(height: int, width: int, longer_side: int, multiple: int) -> tuple[int, int]:
    """The ``(height, width)`` an image is processed at: its longer side scaled to ``longer_side``,
    the aspect ratio kept, each side rounded to a positive multiple of ``multiple``.
    ``longer_side == 0`` keeps the image's own size (then it must already fit)."""
    if longer_side == 0:
        return height, width
    scale = longer_side / max(height, width)
    return fit_size(height * scale, width * scale, multiple)


def check_size(pixels: Tensor, multiple: int, what: str = "image") -> None:
    """``ImageError`` unless the height and width of ``pixels`` ``(..., H, W)`` are multiples of ``multiple``."""
    height, width = pixels.shape[-2:]
    if height % multiple or width % multiple:
        fit_h, fit_w = fit_size(height, width, multiple)
        raise ImageError(
            f"{what} is {width}x{height} (WxH) but the model takes sides that are multiples of {multiple}; "
            f"resize it to {fit_w}x{fit_h} (images.resize, or --resize on the command line)"
        )


def resize(pixels: Tensor, size: tuple[int, int]) -> Tensor:
    """``pixels`` ``(3, T, H, W)`` resized to ``size`` = (height, width), bicubic with antialiasing, kept in [-1, 1]."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    frames = pixels.permute(1, 0, 2, 3).float()  # (T, 3, H, W)
    out = F.interpolate(frames, size=tuple(size), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(-1.0, 1.0).permute(1, 0, 2, 3).to(pixels.dtype)


# ---------------------------------------------------------------------------------------------
# writing


def to_uint8(pixels: Tensor) -> np.ndarray:
    """``(3, T, H, W)`` pixels in [-1, 1] as a ``(T, H, W, 3)`` uint8 array (values outside are clipped)."""
    if pixels.ndim == 3:
        pixels = pixels.unsqueeze(1)
    if pixels.ndim != 4 or pixels.shape[0] != 3:
        raise ValueError(f"pixels must be (3, T, H, W), got shape {tuple(pixels.shape)}")
    scaled = ((pixels.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(1, 2, 3, 0).numpy()


def to_pil(pixels: Tensor) -> list[Image.Image]:
    """One RGB PIL image per frame of ``(3, T, H, W)`` pixels."""
    return [Image.fromarray(frame) for frame in to_uint8(pixels)]


def save_image(pixels: Tensor, url: str | os.PathLike, *, fps: float | None = None) -> None:
    """Write ``(3, T, H, W)`` pixels to a local path or fsspec URL, atomically, in the format of its
    extension: ``.png`` (an animated PNG for a clip), ``.gif``, ``.apng``, or ``.mp4`` (and the
    other ffmpeg formats, with the ``video`` extra); a single image may also be ``.jpg`` and the
    other formats Pillow writes. ``fps``: the clip's frame rate (default ``video.DEFAULT_FPS``)."""
    url = os.fspath(url)
    frames = to_uint8(pixels)
    try:
        if video.extension(url) in (*video.ANIMATED_EXTENSIONS, *video.FFMPEG_EXTENSIONS) or len(frames) > 1:
            video.write_frames(frames, url, fps=fps)
        else:
            video.write_still(frames[0], url)
    except video.ClipError as err:
        raise ImageError(str(err)) from None

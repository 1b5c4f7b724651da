"""Pixels in and out: user images to ``(3, T, H, W)`` float tensors in [-1, 1], and back.

Accepted inputs (``to_pixels``):

- ``torch.Tensor``: float in [-1, 1] or uint8 in [0, 255], ``(3, H, W)`` or ``(3, T, H, W)``;
- ``PIL.Image.Image``: any mode, read by its real bit depth (``image_array``: 16-bit, palette,
  grey, alpha composited over black, EXIF orientation applied);
- ``numpy.ndarray``: ``(H, W, 3)`` or ``(T, H, W, 3)`` (or grey ``(H, W)``), uint8 in [0, 255]
  or float in [0, 1] (the numpy/scikit-image convention);
- a path or fsspec URL (``str`` / ``os.PathLike``) of an image file PIL can read (PNG, JPEG, ...),
  read as a PIL image is (real mode and bit depth), decoded no larger than ``max_side`` when
  given; or of a clip (MP4 and the other ffmpeg formats with the ``video`` extra, animated GIF,
  animated PNG: every frame, see ``lavin_core.data.video``) or of a folder of frames;
- a list or tuple of any of these single images: the frames of a clip.

``read_clip`` reads a clip file of any length with its frame rate (``to_pixels`` insists on the
``1 + 4k`` frames the model takes). Outputs: ``to_pil`` (one image per frame) and ``to_uint8``
(``(T, H, W, 3)`` arrays); files are written by ``lavin_core.data.outputs.save_image`` (the
extension picks the format: PNG, JPEG, WebP, GIF, MP4, ...; atomically).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import Any

import attrs
import fsspec
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F

from lavin_core.context import check_pixels
from lavin_core.data import video
from lavin_core.errors import LavinError


class ImageError(LavinError, ValueError):
    """An image that is missing, unreadable, or of a kind or size that cannot be used."""


# ---------------------------------------------------------------------------------------------
# reading


#: Images with more pixels than this are refused before they are decoded (8192 x 8192: a float
#: copy of one is already 805 MB); a JPEG read with ``max_side`` counts at its reduced decode size.
MAX_PIXELS = 8192 * 8192
#: What "refuse" and "resize" do with an image larger than ``max_side``.
OVERSIZE = ("resize", "refuse")
#: A file processed at N px on its longer side is decoded no larger than this times N (``decode_side``):
#: the model sees it at N px and the prediction is only resized back, so more pixels cost memory, nothing else.
DECODE_FACTOR = 16
# An object repr such as <_io.BytesIO object at 0x7f...>: PIL puts it in its messages.
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def decode_side(processing_side: int | None) -> int | None:
    """The ``max_side`` an image file processed at ``processing_side`` px is decoded within
    (``DECODE_FACTOR`` times it); ``None`` (only ``MAX_PIXELS`` applies) for none or 0 (own size)."""
    return DECODE_FACTOR * processing_side if processing_side else None


def _check_frame_size(width: int, height: int, url: str) -> None:
    """``ImageError`` for a frame of more than ``MAX_PIXELS`` pixels, before it is decoded."""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{url} is {width}x{height} (WxH), more than {MAX_PIXELS:,} pixels to decode; refused before "
            "decoding (scale it down first; only JPEGs can be decoded at a reduced size)"
        )


def _limited_size(width: int, height: int, url: str, max_side: int | None, oversize: str) -> tuple[int, int] | None:
    """The ``(width, height)`` an image of that size is read at within ``max_side`` (None: its own);
    ``ImageError`` instead when ``oversize == "refuse"``."""
    if max_side is None or max(width, height) <= max_side:
        return None
    if oversize == "refuse":
        raise ImageError(
            f"{url} is {width}x{height} (WxH), larger than {max_side} px on its longer side; refused "
            f"before decoding: resize it to at most {max_side} px"
        )
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _warn_scaled(url: str, size: tuple[int, int], target: tuple[int, int], max_side: int) -> None:
    """The one line that says an image is read smaller than it is."""
    warnings.warn(f"{url} is {size[0]}x{size[1]} (WxH), larger than {max_side} px on its longer side; "
                  f"read scaled down to {target[0]}x{target[1]}", stacklevel=5)


def _clean(err: Exception, url: str) -> str:
    return _OBJECT_REPR.sub(url, str(err)) or type(err).__name__


def _open_bytes(url: str) -> bytes:
    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageError(f"no image or clip file at {url}") from None
    except (IsADirectoryError, PermissionError, OSError) as err:
        raise ImageError(f"cannot read {url}: {err.strerror or _clean(err, url)}") from None


def _open_image(data: bytes, url: str) -> Image.Image:
    """The image in ``data``, opened lazily (header only, no pixels decoded yet)."""
    if not data:
        raise ImageError(f"{url} is not a readable image: the file is empty (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            f"{url} is not a readable image or clip (PNG, JPEG, WebP, TIFF, GIF, MP4, ...): unrecognised content "
            f"starting {data[:8]!r}"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"{url} is not a readable image: {_clean(err, url)}") from None


def _limit(image: Image.Image, url: str, max_side: int | None, oversize: str) -> Image.Image:
    """``image`` (not yet decoded) decoded no larger than ``max_side`` on its longer side.

    JPEGs are decoded at 1/2, 1/4 or 1/8 scale by ``draft`` (the full-size buffer never exists),
    other formats whole, then reduced. Whatever would be decoded must stay under ``MAX_PIXELS``.
    """
    size = image.size
    target = _limited_size(*size, url, max_side, oversize)
    if target is not None and image.format == "JPEG":
        image.draft(image.mode, target)  # decodes at the smallest 1/2^k scale still >= target
    _check_frame_size(*image.size, url)
    if target is None:
        return image
    _warn_scaled(url, size, target, max_side)
    return _decoded(image, url).resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _decoded(image: Image.Image, url: str) -> Image.Image:
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"{url} is not a readable image (truncated or corrupt?): {_clean(err, url)}") from None
    return image


def image_array(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` pixels of a PIL image of any mode, by its real bit depth.

    8-bit modes give uint8 (exact); 16- and 32-bit integer modes (``I;16``, ``I``: 16-bit PNG and
    TIFF) give float32 in [0, 1] over 0..65535, float mode ``F`` must lie in [0, 1]. Grey is
    repeated to three channels; a palette is expanded. **Alpha is composited over black**: a
    pixel reads as its colour times its opacity (what premultiplied storage would hold), so a
    fully transparent pixel is black whatever colour it hides. The EXIF orientation is applied.
    """
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.float32)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(f"a 32-bit integer image must hold 16-bit values 0..65535, got "
                             f"[{values.min():.0f}, {values.max():.0f}]")
        return np.repeat((values / 65535.0)[..., None], 3, axis=-1)
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise ImageError(f"a float (mode F) image must lie in [0, 1], got [{values.min():.3g}, {values.max():.3g}]")
        return np.repeat(values[..., None], 3, axis=-1)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        return over_black(np.asarray(image.convert("RGBA")))
    return np.asarray(image.convert("RGB"))


def over_black(rgba: np.ndarray) -> np.ndarray:
    """``(..., 4)`` colour + alpha -> ``(..., 3)`` colour composited over black (colour x opacity).

    uint8 stays uint8 (``round(c * a / 255)`` in integers, the same for a pixel however it comes
    in); floats in [0, 1] stay floats.
    """
    if rgba.dtype == np.uint8:
        wide = rgba.astype(np.uint16)
        return ((wide[..., :3] * wide[..., 3:] + 127) // 255).astype(np.uint8)
    return rgba[..., :3] * rgba[..., 3:]


def read_image_array(url: str | os.PathLike, *, max_side: int | None = None, oversize: str = "resize") -> np.ndarray:
    """``(H, W, 3)`` pixels of the image file at a local path or fsspec URL (see ``image_array``).

    ``max_side`` bounds the decoded size: a larger image is read scaled down (``oversize="resize"``,
    with a warning naming both sizes) or refused (``"refuse"``), in both cases before its full-size
    pixels are decoded. Without it an image over ``MAX_PIXELS`` is refused. ``ImageError`` names
    the file for a missing, unreadable, truncated or oversized image.
    """
    if oversize not in OVERSIZE:
        raise ValueError(f"oversize must be one of {OVERSIZE}, got {oversize!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    url = os.fspath(url)
    with _open_image(_open_bytes(url), url) as image:
        limited = _decoded(_limit(image, url, max_side, oversize), url)
        try:
            return image_array(limited)
        except ImageError as err:
            raise ImageError(f"{url}: {err}") from None


def read_image(url: str | os.PathLike, *, max_side: int | None = None, oversize: str = "resize") -> Image.Image:
    """The image in the file at a local path or fsspec URL as 8-bit RGB (see ``read_image_array``)."""
    array = read_image_array(url, max_side=max_side, oversize=oversize)
    if array.dtype != np.uint8:
        array = (array * 255.0).round().astype(np.uint8)
    return Image.fromarray(array)


@attrs.frozen
class Clip:
    """A clip as read from a file: pixels ``(3, T, H, W)`` in [-1, 1] (any ``T``) and its frame
    rate (None when the source has none: a still image or a frame folder)."""

    pixels: Tensor
    fps: float | None

    @property
    def num_frames(self) -> int:
        return self.pixels.shape[1]


def read_clip(url: str | os.PathLike, *, max_side: int | None = None, oversize: str = "resize") -> Clip:
    """Every frame of the image, clip or frame folder at ``url``, with its frame rate.

    A still image is read by its real mode and bit depth, within ``max_side`` (``read_image_array``);
    clips, animated images and frame folders by ``lavin_core.data.video`` (8-bit frames), each
    frame within ``max_side`` as soon as it is decoded.
    ``ImageError`` (one line) when it is missing, unreadable, empty or mixes frame sizes.
    """
    url = os.fspath(url)
    fs, path = fsspec.core.url_to_fs(url)
    if not (fs.isdir(path) or video.is_ffmpeg_path(url)):
        with _open_image(_open_bytes(url), url) as image:
            still = getattr(image, "n_frames", 1) == 1
        if still:
            return Clip(_from_numpy(read_image_array(url, max_side=max_side, oversize=oversize), url), None)

    def fit(width: int, height: int) -> tuple[int, int] | None:
        target = _limited_size(width, height, url, max_side, oversize)
        _check_frame_size(width, height, url)  # each frame is decoded whole before it is scaled
        if target is not None:
            _warn_scaled(url, (width, height), target, max_side)
        return target

    try:
        frames = video.read_frames(url, fit=fit)
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
    if array.shape[-1] == 4:
        array = over_black(array) if array.dtype == np.uint8 else array  # floats: after the range check
    if array.dtype == np.uint8:
        return _from_uint8_hwc(array)
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0 or not np.isfinite([low, high]).all():
            raise ImageError(
                f"{what}: a float numpy image must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]"
            )
        if array.shape[-1] == 4:
            array = over_black(array)
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


def _single(value: Any, what: str, max_side: int | None = None, oversize: str = "resize") -> Tensor:
    if isinstance(value, Tensor):
        return _from_tensor(value, what)
    if isinstance(value, Image.Image):
        try:
            return _from_numpy(image_array(value), what)
        except ImageError as err:
            raise ImageError(f"{what}: {err}") from None
    if isinstance(value, np.ndarray):
        return _from_numpy(value, what)
    if isinstance(value, (str, os.PathLike)):
        return read_clip(value, max_side=max_side, oversize=oversize).pixels
    raise ImageError(
        f"{what}: cannot use a {type(value).__name__} as an image; pass a tensor, PIL image, "
        f"numpy array, file path or URL, or a list of them for a clip"
    )


def to_pixels(value: Any, *, what: str = "image", any_length: bool = False, max_side: int | None = None,
              oversize: str = "resize") -> Tensor:
    """Pixels ``(3, T, H, W)`` float32 in [-1, 1] from any accepted input (see the module docstring).

    ``what`` names the input in error messages (e.g. ``"query"``). Still image files are read by
    their real mode and bit depth (``image_array``); ``max_side`` / ``oversize`` bound the decoded
    size of a file (``read_image_array``). The result is checked with ``context.check_pixels``:
    finite, and a clip must have ``1 + 4k`` frames, unless ``any_length`` (a long query that
    ``pipeline.windows`` will cut to the model's lengths).
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ImageError(f"{what}: an empty list has no frames")
        frames = [_single(frame, f"{what}[{index}]", max_side, oversize) for index, frame in enumerate(value)]
        if any(frame.shape[1] != 1 for frame in frames):
            raise ImageError(f"{what}: a list of frames must hold single images, not clips")
        shapes = {tuple(frame.shape[2:]) for frame in frames}
        if len(shapes) > 1:
            raise ImageError(f"{what}: the frames of a clip must share one size, got {sorted(shapes)}")
        pixels = torch.cat(frames, dim=1)
    else:
        pixels = _single(value, what, max_side, oversize)
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

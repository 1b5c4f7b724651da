"""Where a prediction may be written: the file name's extension picks the format, and an existing
file is kept unless the caller says to replace it.

    fmt = check_output_path("depth.png", overwrite=False)   # "PNG"; refuses an existing depth.png
    save_image(pixels, "depth.webp")                         # atomically, in the format of its extension

Still images go through PIL (PNG, JPEG, WebP, BMP, TIFF). A clip (``T > 1``) is written as an
animated PNG or WebP here, and as GIF, APNG or MP4 (the ``video`` extra) by
``lavin_core.data.video.write_frames``, with its frame rate.
"""

from __future__ import annotations

import io
import os

import fsspec
from PIL import features
from torch import Tensor

from lavin_core.atomic import write_bytes
from lavin_core.data import video
from lavin_core.data.images import ImageError, to_pil, to_uint8

#: Extension -> PIL format name, for the still formats this Pillow build can write.
IMAGE_FORMATS: dict[str, str] = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
    **({".webp": "WEBP"} if features.check("webp") else {}),
}
#: Formats that hold several frames, so a clip can be written into them.
CLIP_FORMATS = ("PNG", "WEBP")
#: Outputs written by the video writer (``lavin_core.data.video``); their format is reported as ``"VIDEO"``.
VIDEO_EXTENSIONS = (".gif", ".apng", *video.FFMPEG_EXTENSIONS)
VIDEO = "VIDEO"


class OutputExistsError(ImageError, FileExistsError):
    """An output file that exists already and was not to be replaced."""


def _extension(url: str) -> str:
    return os.path.splitext(url.rstrip("/").rpartition("/")[2])[1].lower()


def output_format(url: str | os.PathLike, *, frames: int = 1) -> str:
    """The PIL format the extension of ``url`` asks for; ``ImageError`` for one that cannot hold ``frames`` frames."""
    url = os.fspath(url)
    extension = _extension(url)
    known = ", ".join(sorted(IMAGE_FORMATS))
    if extension in VIDEO_EXTENSIONS or (frames > 1 and extension in video.ANIMATED_EXTENSIONS):
        return VIDEO  # clips keep their exact frame rate there
    if extension not in IMAGE_FORMATS:
        what = f"extension {extension!r}" if extension else "no extension"
        raise ImageError(f"{url} has {what}; the extension chooses the format: use one of {known}, "
                         f"or for a clip {', '.join(VIDEO_EXTENSIONS)}")
    fmt = IMAGE_FORMATS[extension]
    if frames > 1 and fmt not in CLIP_FORMATS:
        clip_exts = ", ".join(e for e, f in IMAGE_FORMATS.items() if f in CLIP_FORMATS)
        raise ImageError(f"{url}: a {frames}-frame clip cannot be written as {fmt}; use {clip_exts}")
    return fmt


def check_output_path(url: str | os.PathLike, *, overwrite: bool, frames: int = 1) -> str:
    """Check, before any work, that a prediction can be written to ``url``; returns its format.

    Refuses (``ImageError``, one line) an unknown extension, a folder, a parent that is a file, and
    an existing file unless ``overwrite``.
    """
    url = os.fspath(url)
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        raise ImageError(f"{url} is a folder; --out takes a file name such as {url.rstrip('/')}/prediction.png")
    fmt = output_format(url, frames=frames)
    parent = path.rstrip("/").rpartition("/")[0]
    if parent and fs.exists(parent) and not fs.isdir(parent):
        raise ImageError(f"cannot write {url}: {parent} is a file, not a folder")
    if not overwrite and fs.exists(path):
        raise OutputExistsError(f"{url} exists; pass --overwrite to replace it (or choose another --out)")
    return fmt


def encode_image(pixels: Tensor, fmt: str, *, fps: float = 8.0) -> bytes:
    """The file bytes of ``(3, T, H, W)`` pixels in the PIL format ``fmt`` (several frames: animated)."""
    frames = to_pil(pixels)
    buffer = io.BytesIO()
    # A depth map or a mask must survive the trip: WebP lossless, JPEG at high quality.
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(fmt, {})
    if len(frames) == 1:
        frames[0].save(buffer, format=fmt, **options)
    else:
        frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:],
                       duration=int(1000 / fps), loop=0, **options)
    return buffer.getvalue()


def save_image(pixels: Tensor, url: str | os.PathLike, *, overwrite: bool = True, fps: float | None = None) -> str:
    """Write ``(3, T, H, W)`` pixels to ``url`` atomically (temp name, then rename) in the format of its
    extension; a reader never sees half a file. Returns the format. ``overwrite=False`` refuses an
    existing file. ``fps``: a clip's frame rate (default ``video.DEFAULT_FPS``)."""
    url = os.fspath(url)
    frames = 1 if pixels.ndim == 3 else int(pixels.shape[1])
    fmt = check_output_path(url, overwrite=overwrite, frames=frames)
    if fmt == VIDEO:
        try:
            video.write_frames(to_uint8(pixels), url, fps=fps)
        except video.ClipError as err:
            raise ImageError(str(err)) from None
        return fmt
    data = encode_image(pixels, fmt, fps=video.DEFAULT_FPS if fps is None else fps)
    try:
        write_bytes(url, data)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as err:
        raise ImageError(f"cannot write {url}: {err.strerror or err}") from None
    return fmt

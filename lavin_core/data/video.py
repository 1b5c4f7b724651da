"""Clip files in and out: MP4 (and other ffmpeg formats), animated GIF, animated PNG, frame folders.

This module moves frames between files and ``(T, H, W, 3)`` uint8 arrays with a frame rate;
``lavin_core.data.images`` turns those into pixels. Formats are chosen by the extension:

- ``.gif``, ``.png`` / ``.apng`` (animated or still) and every still format Pillow reads
  (animated WebP too): Pillow, always installed. A still image is a clip of one frame.
- ``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ``.avi``, ``.m4v``: ffmpeg through ``imageio-ffmpeg``,
  the optional ``video`` extra (``pip install 'lavin-dit[video]'``), which bundles an ffmpeg
  binary, so nothing else needs installing.
- a folder: its image files in name order, one frame each (no frame rate of its own).

Reading keeps every frame and the file's frame rate; writing is atomic (a temporary name in the
same folder, renamed into place), so an interrupted write never leaves half a file where the
user's output should be. Files at fsspec URLs go through a local temporary copy.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs
import fsspec
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from lavin_core.atomic import write_file
from lavin_core.errors import LavinError

#: Extensions ffmpeg reads and writes for us (the ``video`` extra).
FFMPEG_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: Extensions Pillow writes, as an animation when there is more than one frame.
ANIMATED_EXTENSIONS = (".gif", ".png", ".apng")
#: Still-image extensions a frame folder's frames may have.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: The frame rate of a clip whose source has none (a frame folder, a still image).
DEFAULT_FPS = 8.0
VIDEO_EXTRA_HINT = "pip install 'lavin-dit[video]' (or: pip install imageio-ffmpeg)"


class ClipError(LavinError, ValueError):
    """A clip that is missing, unreadable, empty, or of a kind or size that cannot be used."""


@attrs.frozen
class Frames:
    """Decoded frames ``(T, H, W, 3)`` uint8 and their rate (None when the source has none)."""

    array: np.ndarray
    fps: float | None


#: ``fit(width, height)``: the ``(width, height)`` to read frames of that size at, None for their
#: own; called before any frame of that size is decoded, and it may raise to refuse them.
Fit = Callable[[int, int], "tuple[int, int] | None"]


def extension(url: str | os.PathLike) -> str:
    """The lower-case extension of ``url`` (``".mp4"``), ``""`` if none."""
    return os.path.splitext(os.fspath(url).rstrip("/"))[1].lower()


def is_ffmpeg_path(url: str | os.PathLike) -> bool:
    return extension(url) in FFMPEG_EXTENSIONS


def _ffmpeg():
    """The ``imageio_ffmpeg`` module, or a one-line ``ClipError`` saying how to install it."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ClipError(f"reading and writing video files needs the video extra: {VIDEO_EXTRA_HINT}") from None
    return imageio_ffmpeg


# ---------------------------------------------------------------------------------------------
# reading


def read_frames(url: str | os.PathLike, *, fit: Fit | None = None) -> Frames:
    """Every frame of the clip, animated image, still image or frame folder at ``url``.

    ``fit`` (see ``Fit``) bounds the size frames are read at: each frame is scaled down as soon
    as it is decoded (ffmpeg scales them itself), so the full-size clip never exists in memory.
    ``ClipError`` (one line, naming ``url``) when it is missing, unreadable, empty or holds
    frames of different sizes.
    """
    url = os.fspath(url)
    fit = functools.cache(fit or (lambda width, height: None))  # one call (and warning) per frame size
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        return _read_folder(fs, path, url, fit)
    if not fs.exists(path):
        raise ClipError(f"no image or clip file at {url}")
    if is_ffmpeg_path(url):
        return _read_ffmpeg(fs, path, url, fit)
    try:
        data = fs.cat_file(path)
    except (IsADirectoryError, PermissionError, OSError) as err:
        raise ClipError(f"cannot read {url}: {err.strerror or err}") from None
    return _read_pillow(data, url, fit)


def _read_pillow(data: bytes, url: str, fit: Fit) -> Frames:
    try:
        with Image.open(io.BytesIO(data)) as image:
            target = fit(*image.size)
            frames = [_fitted(frame.convert("RGB"), target) for frame in ImageSequence.Iterator(image)]
            durations = _durations(image)
    except LavinError:  # fit refused the size
        raise
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as err:
        raise ClipError(f"{url} is not a readable image or clip (PNG, JPEG, GIF, MP4, ...): {err}") from None
    if not frames:
        raise ClipError(f"{url} holds no frames")
    return Frames(np.stack(frames), _fps_from_durations(durations) if len(frames) > 1 else None)


def _fitted(frame: Image.Image, target: tuple[int, int] | None) -> np.ndarray:
    if target is not None:
        frame = frame.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(frame)


def _durations(image: Image.Image) -> list[float]:
    """Each frame's display time in milliseconds, as Pillow reports it (GIF, APNG, WebP)."""
    durations = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        durations.append(float(image.info.get("duration") or 0))
    return durations


def _fps_from_durations(durations: list[float]) -> float | None:
    """The frame rate of the median frame duration (GIF delays are whole centiseconds, so not exact)."""
    positive = [d for d in durations if d > 0]
    return round(1000.0 / float(np.median(positive)), 3) if positive else None


def _read_folder(fs, path: str, url: str, fit: Fit) -> Frames:
    names = sorted(p for p in fs.ls(path, detail=False) if extension(p) in FRAME_EXTENSIONS)
    if not names:
        raise ClipError(f"frame folder {url} holds no image files ({', '.join(FRAME_EXTENSIONS)})")
    frames = []
    for name in names:
        frame = _read_pillow(fs.cat_file(name), name, fit).array
        if len(frame) != 1:
            raise ClipError(f"frame folder {url}: {name} is an animation; a frame folder holds still images")
        frames.append(frame[0])
    _check_one_size([f.shape for f in frames], names, url)
    return Frames(np.stack(frames), None)


def _check_one_size(shapes: list[tuple[int, ...]], names: list[str], url: str) -> None:
    first = shapes[0]
    for shape, name in zip(shapes, names):
        if shape != first:
            raise ClipError(
                f"{url}: frames must share one size, but {names[0]} is {first[1]}x{first[0]} and {name} is "
                f"{shape[1]}x{shape[0]} (WxH); resize them to one size"
            )


def _read_ffmpeg(fs, path: str, url: str, fit: Fit) -> Frames:
    ffmpeg = _ffmpeg()
    with _local_copy(fs, path) as local:
        try:
            reader = ffmpeg.read_frames(local)
            meta = next(reader)
            target = fit(*meta["size"])
            if target is not None:  # again, with ffmpeg scaling each frame down before it reaches us
                # quiet: imageio-ffmpeg warns when it stops ffmpeg early, and that the size read is not the source's
                with _quiet_logger("imageio_ffmpeg"):
                    reader.close()
                    reader = ffmpeg.read_frames(local, output_params=["-vf", "scale={}:{}:flags=area".format(*target)])
                    meta = next(reader)
            width, height = meta["size"]
            frames = [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
        except LavinError:  # fit refused the size
            reader.close()
            raise
        except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as err:
            detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise ClipError(f"{url} is not a readable video: {detail}") from None
    if not frames:
        raise ClipError(f"{url} holds no frames")
    fps = float(meta.get("fps") or 0) or None
    return Frames(np.stack(frames), fps)


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _local_copy:
    """A local path of ``path`` on ``fs``: the path itself on the local file system, else a temporary copy."""

    def __init__(self, fs, path: str):
        self.fs, self.path, self.temp = fs, path, None

    def __enter__(self) -> str:
        if _is_local(self.fs):
            return self.path
        handle, self.temp = tempfile.mkstemp(suffix=extension(self.path))
        with os.fdopen(handle, "wb") as f:
            f.write(self.fs.cat_file(self.path))
        return self.temp

    def __exit__(self, *exc) -> None:
        if self.temp is not None:
            os.unlink(self.temp)


def _is_local(fs) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


# ---------------------------------------------------------------------------------------------
# writing


def write_frames(frames: np.ndarray, url: str | os.PathLike, *, fps: float | None = None) -> None:
    """Write ``(T, H, W, 3)`` uint8 ``frames`` to ``url``, the format chosen by its extension.

    ``.mp4`` (and the other ffmpeg formats) need the video extra; ``.gif`` and ``.png`` / ``.apng``
    are written by Pillow, animated when there is more than one frame (GIF stores the frame rate
    to the nearest centisecond per frame). ``fps`` defaults to ``DEFAULT_FPS``. Any other
    extension is a one-line ``ClipError``.
    """
    url = os.fspath(url)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ClipError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    fps = DEFAULT_FPS if fps is None else float(fps)
    if not fps > 0:
        raise ClipError(f"the frame rate must be positive, got {fps}")
    ext = extension(url)
    if ext in FFMPEG_EXTENSIONS:
        _atomic_write(url, lambda local: _write_ffmpeg(frames, local, fps))
    elif ext in ANIMATED_EXTENSIONS:
        data = _encode_pillow(frames, ext, fps)
        _atomic_write(url, lambda local: Path(local).write_bytes(data))
    else:
        known = ", ".join((*ANIMATED_EXTENSIONS, *FFMPEG_EXTENSIONS))
        raise ClipError(f"cannot write {url}: unknown extension {ext or '(none)'!r}; use one of {known}")


def _encode_pillow(frames: np.ndarray, ext: str, fps: float) -> bytes:
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    if ext == ".gif":
        # GIF delays are whole centiseconds (12 fps is stored as 80 ms); APNG keeps a fraction
        options = {"format": "GIF", "duration": max(10, round(100 / fps) * 10)}
    else:
        options = {"format": "PNG", "duration": 1000 / fps}
    if len(images) == 1:
        images[0].save(buffer, format=options["format"])
    else:
        images[0].save(buffer, save_all=True, append_images=images[1:], loop=0, **options)
    return buffer.getvalue()


def _write_ffmpeg(frames: np.ndarray, local: str, fps: float) -> None:
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ClipError(
            f"an MP4 needs even sides (yuv420p), but the frames are {width}x{height} (WxH); "
            f"write a .png or .gif, or resize to {width + width % 2}x{height + height % 2}"
        )
    writer = _ffmpeg().write_frames(local, (width, height), fps=fps, quality=8, macro_block_size=1,
                                    output_params=["-f", _muxer(local)])
    writer.send(None)  # the generator starts ffmpeg on its first send
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _muxer(path: str) -> str:
    """The ffmpeg container name for ``path``'s extension, passed explicitly: ffmpeg guesses it
    from the name, and a temporary name might one day not end with the final one."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}[
        extension(path)
    ]


def _atomic_write(url: str, write) -> None:
    """``atomic.write_file``, its file-system errors as one-line ``ClipError``s."""
    try:
        write_file(url, write)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as err:
        raise ClipError(f"cannot write {url}: {err.strerror or err}") from None

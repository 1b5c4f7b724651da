"""RGB image sources for the restoration tasks.

    image_source("scenes")          # procedural renders (always available)
    image_source("skimage")         # the sample photos bundled with scikit-image, if installed
    image_source("s3://bucket/dir") # PNG/JPEG files of a folder: a path or any fsspec URL
    image_source("mixed")           # half scene renders, half scikit-image photos (scenes alone without it)

A source hands out seeded random ``(H, W, 3)`` float32 crops in [0, 1]: ``source.image(rng, H, W)``.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from lavin_plugins.scenes import draw_figure, random_figure, random_scene, render

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: The colour photos among scikit-image's bundled data (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


class ImageSource(abc.ABC):
    @abc.abstractmethod
    def image(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random ``(height, width, 3)`` float32 image in [0, 1] drawn with ``rng``."""


def random_crop(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A random crop of ``image`` ``(h, w, 3)`` in [0, 1], of 50-100% of its shorter side, resized to the size asked."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    crop_h, crop_w = max(1, min(h, side)), max(1, min(w, int(side * width / height)))
    y, x = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
    crop = Image.fromarray((image[y : y + crop_h, x : x + crop_w] * 255).round().astype(np.uint8))
    return np.asarray(crop.resize((width, height), Image.Resampling.BICUBIC), np.float32) / 255


class SceneImages(ImageSource):
    """Procedural renders; ``figures=True`` adds a stick figure to half of them."""

    def __init__(self, *, figures: bool = True):
        self.figures = figures

    def __repr__(self) -> str:
        return f"SceneImages(figures={self.figures})"

    def image(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        image = render(random_scene(rng, num_shapes=(2, 5)), height, width).rgb.copy()
        if self.figures and rng.uniform() < 0.5 and min(height, width) >= 32:
            draw_figure(image, random_figure(rng, height, width, min_separation=0.0))
        return image


class ArrayImages(ImageSource):
    """Random crops of a fixed list of ``(h, w, 3)`` images (loaded lazily by ``load``)."""

    def __init__(self, load: Callable[[], list[np.ndarray]], what: str):
        self._load, self._images, self.what = load, None, what

    def __repr__(self) -> str:
        return f"ArrayImages({self.what})"

    def image(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        if self._images is None:
            self._images = self._load()
            if not self._images:
                raise ValueError(f"{self.what} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        return random_crop(rng, self._images[rng.integers(len(self._images))], height, width)


def _read_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255


def folder_images(url: str) -> ArrayImages:
    """Every image file directly in folder ``url`` (a path or fsspec URL), in sorted name order."""
    import fsspec

    def load() -> list[np.ndarray]:
        fs, root = fsspec.core.url_to_fs(url)
        if not fs.isdir(root):
            raise FileNotFoundError(f"image folder {url!r} does not exist")
        names = sorted(p for p in fs.ls(root, detail=False) if p.lower().endswith(IMAGE_SUFFIXES))
        return [_read_rgb(fs.cat_file(name)) for name in names]

    return ArrayImages(load, f"folder {url!r}")


def skimage_photos() -> ArrayImages:
    """scikit-image's bundled colour photos; raises ``ValueError`` if scikit-image is not installed."""
    try:
        import skimage.data
    except ImportError as exc:
        raise ValueError("source='skimage' needs scikit-image: pip install scikit-image (or use source='scenes')") from exc

    def load() -> list[np.ndarray]:
        photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS if hasattr(skimage.data, name)]
        return [np.asarray(p[..., :3], np.float32) / 255 for p in photos if p.ndim == 3]

    return ArrayImages(load, "scikit-image's sample data")


class MixedImages(ImageSource):
    """Each image from one of ``sources``, chosen with the same generator."""

    def __init__(self, sources: list[ImageSource]):
        self.sources = sources

    def __repr__(self) -> str:
        return f"MixedImages({self.sources!r})"

    def image(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        return self.sources[rng.integers(len(self.sources))].image(rng, height, width)


def mixed_images() -> ImageSource:
    """Scene renders and, when scikit-image is installed, its photos, half and half: real photos
    where the package has them (the training universe's image maps use this)."""
    import importlib.util

    if importlib.util.find_spec("skimage") is None:
        return SceneImages()
    return MixedImages([SceneImages(), skimage_photos()])


def image_source(spec: str | ImageSource) -> ImageSource:
    """An ``ImageSource`` from ``"scenes"``, ``"skimage"``, a folder path / URL, or a source itself."""
    if isinstance(spec, ImageSource):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"source must be 'scenes', 'skimage', 'mixed', a folder path or URL, or an ImageSource; got {spec!r}")
    if spec == "scenes":
        return SceneImages()
    if spec == "skimage":
        return skimage_photos()
    if spec == "mixed":
        return mixed_images()
    return folder_images(spec)

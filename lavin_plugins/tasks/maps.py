"""Image-map tasks: a photo or scene render in, the same image through a procedural map out,
with the map's parameters drawn once per context (``lavin_plugins.imagemaps``).

There is nothing to recognise in such a task but its examples: a context of ``hue_rotate``
turns hues by one angle, the next context by another. ``MAP_TASKS`` has one registered task per
map (``map_NAME``) and ``map_compose`` (two trained maps in a row); the maps of
``HELD_OUT_FAMILIES`` are the held-out split (``split = "held-out"``). The answer is the mapped
image ``(H, W, 3)`` float32 in [0, 1]; the main metric is SSIM, which a blurred copy of the query
cannot win by accident as it can PSNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from lavin_core.ensemble import mean_answer
from lavin_plugins import metrics
from lavin_plugins.imagemaps import HELD_OUT_FAMILIES, MAPS, apply_map, draw_composition
from lavin_plugins.photos import ImageSource, image_source
from lavin_plugins.tasks.base import GeneratedTask, single_frame, to_pixels


class ImageMapTask(GeneratedTask):
    """Answer: the mapped image ``(H, W, 3)`` float32 in [0, 1]. ``source`` as the restoration
    tasks' (``"scenes"``, ``"skimage"``, ``"mixed"``, a folder). Subclasses set ``maps``."""

    metrics: ClassVar[tuple[str, ...]] = ("ssim", "psnr")
    higher_is_better: ClassVar[dict[str, bool]] = {"ssim": True, "psnr": True}
    styles: ClassVar[tuple[str, ...]] = ("drawn",)
    default_style: ClassVar[str] = "drawn"
    #: The map family (``lavin_plugins.imagemaps``).
    family: ClassVar[str]

    def __init__(self, *, size: int | tuple[int, int] = 64, style: str | None = None,
                 source: str | ImageSource = "scenes"):
        super().__init__(size=size, style=style)
        self.source = image_source(source)
        # the maps applied in order, as (name, params); drawn per context by ``instance``. The task
        # itself holds the draw of seed 0, so that code asking it for examples directly (not
        # through an instance) gets one fixed map instead of an error.
        self.maps: tuple[tuple[str, dict[str, Any]], ...] = self.draw(np.random.default_rng(0), "drawn")["maps"]

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image = self.source.image(rng, self.height, self.width)
        out = image
        for name, params in self.maps:
            out = apply_map(name, out, params)
        return image, out

    def render(self, answer: np.ndarray) -> Tensor:
        return to_pixels(answer)

    def read(self, pixels: Tensor) -> np.ndarray:
        return single_frame(pixels)

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"ssim": metrics.ssim(predicted, truth), "psnr": metrics.psnr(predicted, truth)}

    def combine(self, answers: Sequence[np.ndarray]) -> np.ndarray:
        """The mean of the sampled images."""
        return mean_answer(answers)


def _single_map_task(map_name: str) -> type[ImageMapTask]:
    entry = MAPS[map_name]

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"maps": ((map_name, entry.draw(rng)),)}

    held_out = entry.family in HELD_OUT_FAMILIES
    return type(f"Map{''.join(p.title() for p in map_name.split('_'))}Task", (ImageMapTask,), {
        "name": f"map_{map_name}",
        "description": f"image map: {map_name.replace('_', ' ')} ({entry.family} family), parameters drawn per context"
                       + (" [held out]" if held_out else ""),
        "family": entry.family,
        "split": "held-out" if held_out else "trained",
        "draw": draw,
        "__module__": __name__,
        "__doc__": f"``imagemaps.{map_name}`` with parameters drawn per context.",
    })


class ComposeMapTask(ImageMapTask):
    """Two maps of different trained families in a row, both drawn per context."""

    name: ClassVar[str] = "map_compose"
    description: ClassVar[str] = "image map: two maps of different families in a row, drawn per context"
    family: ClassVar[str] = "compose"
    split: ClassVar[str] = "trained"

    def draw(self, rng: np.random.Generator, pool: str) -> dict:
        return {"maps": draw_composition(rng)}


MAP_TASKS: tuple[type[ImageMapTask], ...] = (*(_single_map_task(name) for name in MAPS), ComposeMapTask)

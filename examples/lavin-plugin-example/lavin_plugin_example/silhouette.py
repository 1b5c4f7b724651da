"""The "silhouette" task: the objects of a rendered scene as one flat colour on another, with
options, and its two colours drawn per context. Written only against the public kit."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from lavin_plugins import kit


class SilhouetteTask(kit.GeneratedTask):
    """Answer: a boolean mask ``(H, W)``, True on the objects (or on their outline, ``outline=True``).

    Options: ``size``; ``style`` ("drawn": two colours drawn per context, so only the examples tell
    which is the background; "fixed": white on black); ``shapes``, the most objects in a scene;
    ``outline``, draw a ``thickness``-pixel outline instead of the filled silhouette.
    """

    name: ClassVar[str] = "silhouette"
    description: ClassVar[str] = "the objects as one flat colour on another, colours drawn per context (example plugin)"
    metrics: ClassVar[tuple[str, ...]] = ("iou", "pixel_accuracy")
    higher_is_better: ClassVar[dict[str, bool]] = {"iou": True, "pixel_accuracy": True}
    styles: ClassVar[tuple[str, ...]] = ("fixed", "drawn")
    default_style: ClassVar[str] = "drawn"

    def __init__(self, *, size: int = 64, style: str | None = None, shapes: int = 3, outline: bool = False,
                 thickness: int = 1):
        super().__init__(size=size, style=style)
        if shapes < 1:
            raise ValueError(f"shapes must be at least 1, got {shapes}")
        if thickness < 1:
            raise ValueError(f"thickness must be at least 1 pixel, got {thickness}")
        self.shapes, self.outline, self.thickness = int(shapes), bool(outline), int(thickness)
        self.colors = kit.palette_tuple([kit.BACKGROUND, np.ones(3)])  # (background, silhouette)

    def draw(self, rng: np.random.Generator, pool: str) -> dict[str, Any]:
        return {"colors": kit.palette_tuple(kit.distinct_colors(rng, 2, kit.TRAINING_COLORS))}

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        view = kit.render(kit.random_scene(rng, num_shapes=(1, self.shapes)), self.height, self.width)
        mask = view.foreground
        if self.outline:
            mask = kit.dilate(mask, self.thickness) & ~mask
        return view.rgb, mask

    def render(self, answer: np.ndarray) -> Any:
        colors = np.array(self.colors, np.float32)
        return kit.to_pixels(np.where(np.asarray(answer, bool)[..., None], colors[1], colors[0]))

    def read(self, pixels) -> np.ndarray:
        return kit.nearest_code(kit.single_frame(pixels), np.array(self.colors, np.float32))[0] == 1

    def score(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"iou": kit.iou(predicted, truth), "pixel_accuracy": kit.pixel_accuracy(predicted, truth)}

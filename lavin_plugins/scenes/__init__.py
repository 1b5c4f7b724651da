"""A small procedural world with exact ground truth: shapes on a ground plane, stick figures, motion.

    >>> rng = np.random.default_rng(0)
    >>> view = render(random_scene(rng), 64, 64)      # rgb, depth, normals, semantic, instance, edges, boxes
    >>> figure = random_figure(rng, 64, 64)             # keypoints (14, 2) and limbs to draw

Seeded through a ``numpy.random.Generator``: the same generator state gives the same scene.
"""

from lavin_plugins.scenes.figures import KEYPOINTS, LIMBS, StickFigure, draw_figure, random_figure
from lavin_plugins.scenes.render import SceneRender, render
from lavin_plugins.scenes.scene import CLASSES, Scene, Shape, random_scene, random_shape

__all__ = [
    "CLASSES",
    "KEYPOINTS",
    "LIMBS",
    "Scene",
    "SceneRender",
    "Shape",
    "StickFigure",
    "draw_figure",
    "random_figure",
    "random_scene",
    "random_shape",
    "render",
]

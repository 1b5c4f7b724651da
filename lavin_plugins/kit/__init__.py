"""The plugin kit: everything a task plugin needs, at one public path with a stability promise.

    from lavin_plugins import kit
    from lavin_plugins.kit.testing import check_task

Stability promise (``KIT_VERSION``, semantic versioning): a name exported here keeps its
signature and meaning within a major version; additions bump the minor version; a removal or an
incompatible change bumps the major version and keeps the old name working, with a
``DeprecationWarning``, for one minor release first. Everything else in ``lavin_plugins`` and
``lavin_core`` (outside ``lavin_core``'s own ``__all__``) is internal and may move.

What is here (each name is the internal object itself, re-exported, never a copy):

- the task interface and its data: ``Task``, ``PromptSampler``, ``Example``, ``ExamplePair``,
  ``TaskContext``, ``check_pixels``;
- task base classes and pixel helpers: ``GeneratedTask`` (seeded ``make(rng)``, per-context
  renderings through ``draw(rng, pool)`` and ``style``), ``STYLES``, ``parse_size``,
  ``to_pixels``, ``from_pixels``, ``single_frame``, ``SIZE_MULTIPLE``;
- the scene renderer: ``random_scene``, ``render`` (rgb, depth, normals, semantic, instance,
  foreground, edges, boxes), ``random_figure``, ``draw_figure``, ``CLASSES``, ``KEYPOINTS``,
  ``LIMBS``, and drawing: ``draw_segment``, ``draw_disc``, ``draw_box_outline``;
- image sources: ``ImageSource``, ``image_source`` ("scenes", "skimage", "mixed", a folder/URL),
  ``random_crop``; image maps: ``MAPS``, ``apply_map``, ``gaussian_blur``, ``luma``;
- answer codecs: ``encode_scalar``/``decode_scalar`` (a value on a colour path), ``SCALAR_PATH``,
  ``CODE_COLORS``, ``TRAINING_COLORS``/``UNSEEN_COLORS`` (the two palette pools),
  ``distinct_colors``, ``nearest_code``, ``palette_tuple``, ``BACKGROUND``, ``LINE_GREY``;
- metrics: ``psnr``, ``ssim``, ``iou``, ``mean_iou``, ``pixel_accuracy``, ``abs_rel``,
  ``delta1``, ``mean_angular_error``, ``fraction_within``, ``pck``, ``keypoint_error``,
  ``box_iou``, ``edge_scores``, ``dilate``;
- ensemble combiners (for ``Task.combine``): ``mean_answer``, ``median_answer``,
  ``unit_mean_answer``, ``minimum_bayes_risk``;
- seeds: ``mix_seed``, ``context_seed`` (see the plugin guide's seed convention).

``lavin_plugins.kit.testing`` holds the contract checks a plugin's own tests call.
"""

from lavin_core.context import Example, ExamplePair, TaskContext, check_pixels
from lavin_core.ensemble import mean_answer, median_answer, minimum_bayes_risk, unit_mean_answer
from lavin_core.interfaces import PromptSampler, Task
from lavin_core.seeds import context_seed, mix_seed
from lavin_plugins.imagemaps import MAPS, apply_map, gaussian_blur, luma
from lavin_plugins.metrics import (abs_rel, box_iou, delta1, dilate, edge_scores, fraction_within, iou,
                                   keypoint_error, mean_angular_error, mean_iou, pck, pixel_accuracy, psnr, ssim)
from lavin_plugins.photos import ImageSource, image_source, random_crop
from lavin_plugins.scenes import CLASSES, KEYPOINTS, LIMBS, SceneRender, draw_figure, random_figure, random_scene, render
from lavin_plugins.scenes.draw import draw_box_outline, draw_disc, draw_segment
from lavin_plugins.tasks.base import SIZE_MULTIPLE, STYLES, GeneratedTask, from_pixels, parse_size, single_frame, to_pixels
from lavin_plugins.tasks.codes import (BACKGROUND, CODE_COLORS, LINE_GREY, SCALAR_PATH, TRAINING_COLORS, UNSEEN_COLORS,
                                       decode_scalar, distinct_colors, encode_scalar, nearest_code, palette_tuple)

#: The kit's version: the stability promise above is made per major version.
KIT_VERSION = "1.0"

__all__ = [
    "BACKGROUND", "CLASSES", "CODE_COLORS", "KEYPOINTS", "KIT_VERSION", "LIMBS", "LINE_GREY", "MAPS",
    "SCALAR_PATH", "SIZE_MULTIPLE", "STYLES", "TRAINING_COLORS", "UNSEEN_COLORS",
    "Example", "ExamplePair", "GeneratedTask", "ImageSource", "PromptSampler", "SceneRender", "Task", "TaskContext",
    "abs_rel", "apply_map", "box_iou", "check_pixels", "context_seed", "decode_scalar", "delta1", "dilate",
    "distinct_colors", "draw_box_outline", "draw_disc", "draw_figure", "draw_segment", "edge_scores",
    "encode_scalar", "fraction_within", "from_pixels", "gaussian_blur", "image_source", "iou", "keypoint_error",
    "luma", "mean_angular_error", "mean_answer", "mean_iou", "median_answer", "minimum_bayes_risk", "mix_seed",
    "nearest_code", "palette_tuple", "parse_size", "pck", "pixel_accuracy", "psnr", "random_crop",
    "random_figure", "random_scene", "render", "single_frame", "ssim", "to_pixels", "unit_mean_answer",
]

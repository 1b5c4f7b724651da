"""The built-in tasks, one module per family. ``BUILTIN_TASKS`` (the 14 vision tasks),
``MAP_TASKS`` (image maps drawn per context) and ``UNSEEN_TASKS`` (held-out re-renderings) are
what the plugin registers; ``universe`` declares the training universe and its held-out split."""

from lavin_plugins.tasks.base import GeneratedTask, from_pixels, parse_size, to_pixels
from lavin_plugins.tasks.depth import DepthTask
from lavin_plugins.tasks.detection import DetectionTask
from lavin_plugins.tasks.edges import EdgeDetectionTask
from lavin_plugins.tasks.normals import NormalsTask
from lavin_plugins.tasks.pose import PoseTask
from lavin_plugins.tasks.restoration import (
    ColorizationTask,
    DeblurringTask,
    DenoisingTask,
    DerainingTask,
    InpaintingTask,
    LowLightTask,
    RestorationTask,
)
from lavin_plugins.tasks.segmentation import ForegroundSegmentationTask, SemanticSegmentationTask
from lavin_plugins.tasks.video import FramePredictionTask
from lavin_plugins.tasks.video_scenes import (
    VIDEO_SCENE_TASKS,
    DepthToVideoTask,
    VideoDepthTask,
    VideoNormalsTask,
    VideoSegmentationTask,
)

BUILTIN_TASKS = (
    DepthTask,
    NormalsTask,
    SemanticSegmentationTask,
    ForegroundSegmentationTask,
    EdgeDetectionTask,
    DetectionTask,
    PoseTask,
    ColorizationTask,
    DenoisingTask,
    DeblurringTask,
    InpaintingTask,
    LowLightTask,
    DerainingTask,
    FramePredictionTask,
    *VIDEO_SCENE_TASKS,
)

from lavin_plugins.tasks.maps import MAP_TASKS, ImageMapTask  # noqa: E402  (the universe needs BUILTIN_TASKS)
from lavin_plugins.tasks.universe import HELD_OUT, TRAINING_UNIVERSE, UNSEEN_TASKS  # noqa: E402

__all__ = [
    "BUILTIN_TASKS",
    "ColorizationTask",
    "DeblurringTask",
    "DenoisingTask",
    "DepthTask",
    "DepthToVideoTask",
    "DerainingTask",
    "DetectionTask",
    "EdgeDetectionTask",
    "ForegroundSegmentationTask",
    "FramePredictionTask",
    "GeneratedTask",
    "HELD_OUT",
    "ImageMapTask",
    "MAP_TASKS",
    "TRAINING_UNIVERSE",
    "UNSEEN_TASKS",
    "InpaintingTask",
    "LowLightTask",
    "NormalsTask",
    "PoseTask",
    "RestorationTask",
    "SemanticSegmentationTask",
    "VideoDepthTask",
    "VideoNormalsTask",
    "VideoSegmentationTask",
    "from_pixels",
    "parse_size",
    "to_pixels",
]

"""The built-in tasks, one module per family. ``BUILTIN_TASKS`` is what the plugin registers."""

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

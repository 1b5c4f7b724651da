"""LaVin core: interfaces, models, flow matching, samplers, pipeline, data, training and CLI.

Importing ``lavin_core`` is cheap; the models and the pipeline live in their own modules.
"""

from lavin_core.context import Example, ExamplePair, TaskContext
from lavin_core.errors import CheckpointError, LavinError, UnknownNameError
from lavin_core.interfaces import Denoiser, Encoder, PromptSampler, Sampler, StepCallback, Task

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Denoiser",
    "Encoder",
    "Example",
    "ExamplePair",
    "LavinError",
    "PromptSampler",
    "Sampler",
    "StepCallback",
    "Task",
    "TaskContext",
    "UnknownNameError",
]

"""LaVin core: interfaces, models, flow matching, samplers, pipeline, data, training and CLI.

Importing ``lavin_core`` is cheap: the interfaces load at once, the models, pipeline and data
tools on first use (``lavin_core.load_pipeline`` imports ``lavin_core.pipeline`` when called).

    >>> import lavin_core
    >>> pipe = lavin_core.load_pipeline("lavin-tiny")
"""

import importlib

from lavin_core import threads as _threads

# Before anything imports torch: OpenMP reads its wait policy once, when it loads (see threads.py).
_threads.passive_waiting()

from lavin_core import _moved  # noqa: E402
from lavin_core.context import Example, ExamplePair, TaskContext
from lavin_core.errors import CheckpointError, LavinError, UnknownNameError
from lavin_core.interfaces import Denoiser, Encoder, PromptSampler, Sampler, StepCallback, Task

__version__ = "0.1.0"

_moved.install()

#: Public names that live in heavier modules, imported on first access.
_LAZY = {
    "InContextPipeline": "lavin_core.pipeline",
    "InContextOutput": "lavin_core.pipeline",
    "LatentCache": "lavin_core.pipeline",
    "load_pipeline": "lavin_core.pipeline",
    "JDiT": "lavin_core.jdit",
    "JDiTConfig": "lavin_core.jdit",
    "STVAE": "lavin_core.stvae",
    "STVAEConfig": "lavin_core.stvae",
    "ContextLoader": "lavin_core.data.loader",
    "build_cache": "lavin_core.data.cache",
    "open_cache": "lavin_core.data.cache",
    "TemplateFolder": "lavin_core.data.datasets",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lavin_core' has no attribute {name!r}")


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
    *_LAZY,
]

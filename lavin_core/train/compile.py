"""``model.compile`` resolved for one run, and the seconds compilation took.

``model.compile`` is ``true``, ``false`` or ``"auto"`` (the default). ``"auto"`` compiles the
J-DiT's blocks when the run's work repays the compile time (``lavin_core.pipeline.compile_policy``,
the same decision inference makes): the lavin-tiny recipe does, a 20-step test run does not.
``"auto"`` means the dit stage only (the policy's FLOP count is the J-DiT's); ``true`` compiles
the repeated blocks of either stage. The compile itself is ``parallelize.apply_compile``: regional,
one compiled block reused by every layer, shapes dynamic after the first recompile (the pair count
and the null-context share change the sequence lengths from step to step).
"""

from __future__ import annotations

import sys

import torch

from lavin_core.jdit.config import JDiTConfig
from lavin_core.pipeline.compile_policy import jdit_gflop, should_compile
from lavin_core.train.config import TrainConfig


def training_gflop(config: TrainConfig, model_config: JDiTConfig) -> float:
    """J-DiT GFLOP of the whole run: steps x batch x tokens per sample (the context at its mean pair
    count, plus the target frame), forward and backward. Clips have more frames: an undercount."""
    d = config.data
    side = d.image_size // 8 // model_config.patch_size  # latent side in patches
    frames = (d.min_pairs + d.max_pairs) + 1 + 1  # 2 frames per pair at the mean count, query, target
    tokens = config.run.steps * config.train.batch_size * frames * side * side
    return jdit_gflop(model_config, tokens, training=True)


def resolve_compile(config: TrainConfig, model_config: object, device: torch.device) -> bool:
    """``model.compile`` as the bool ``parallelize.plan`` takes, for a model with ``model_config``
    (a ``JDiTConfig`` for the dit stage) trained on ``device``."""
    choice = config.model.compile
    if choice == "auto" and not isinstance(model_config, JDiTConfig):
        return False
    work = training_gflop(config, model_config) if choice == "auto" else 0.0
    return should_compile(choice, work, device.type)


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far (Dynamo tracing and Inductor, forward and backward).

    0 when nothing was compiled; read from Dynamo's own timers, so the figure is what compilation
    cost, not the step that triggered it.
    """
    if "torch._dynamo" not in sys.modules:
        return 0.0
    from torch._dynamo.utils import calculate_time_spent

    # Whole-frame compiles (AOTAutograd's joint graph included) plus backwards compiled lazily.
    return float(calculate_time_spent()["total_wall_time"])

"""Training: one trainer for the ST-VAE and the J-DiT, from one CPU process to many GPUs under torchrun.

    >>> from lavin_core.train import load_config, train
    >>> export_dir = train(load_config("configs/lavin-tiny/dit.toml"), "runs/lavin-tiny-dit")

or ``lavin train configs/lavin-tiny/dit.toml``. See ``trainer`` for the loop, ``config`` for the file format.
"""

from lavin_core.train.config import ConfigError, TrainConfig, load_config
from lavin_core.train.trainer import TrainingError, train

__all__ = ["ConfigError", "TrainConfig", "TrainingError", "load_config", "train"]

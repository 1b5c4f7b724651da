"""``python -m lavin_core.train CONFIG [options]`` = ``lavin train``; handy under ``torchrun -m``."""

import sys

from lavin_core.cli import main

sys.exit(main(["train", *sys.argv[1:]]))

"""Write a deeper copy of a trained J-DiT that computes exactly what it does, to train on from there.

    python scripts/grow_jdit.py lavin-tiny-icl --depth 8 --out runs/lavin-tiny-icl-deep-init
    lavin train CONFIG --set 'model.init="runs/lavin-tiny-icl-deep-init"'   # model.preset of depth 8

SOURCE is a model name (``lavin-tiny-icl``), a model folder or a J-DiT ``save_pretrained`` folder
(e.g. ``RUN_DIR/export``). The new blocks are copies of the block before each, gated off
(``lavin_core.jdit.grow``); the folder is written in float32 whatever SOURCE's dtype, and the
script checks, on a random context, that the grown network's output equals SOURCE's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lavin_core.checkpoint import save_pretrained
from lavin_core.errors import LavinError
from lavin_core.jdit import JDiT
from lavin_core.jdit.grow import grow_depth
from lavin_core.pretrained.folders import model_part


def same_output(old: JDiT, new: JDiT, seed: int = 0) -> float:
    """Largest absolute difference of the two networks' velocities on one random 2-pair context."""
    generator = torch.Generator().manual_seed(seed)
    channels, patch = old.config.in_channels, old.config.patch_size
    cond = torch.randn(2, channels, 5, 4 * patch, 4 * patch, generator=generator)
    z_t = torch.randn(2, channels, 1, 4 * patch, 4 * patch, generator=generator)
    t = torch.rand(2, generator=generator)
    with torch.no_grad():
        return float((old(z_t, t, cond) - new(z_t, t, cond)).abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="model name, model folder or J-DiT save_pretrained folder")
    parser.add_argument("--depth", type=int, required=True, help="blocks of the grown network")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not exist)")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} already exists; pass a new --out folder (nothing was overwritten)")
    try:
        old = JDiT.from_pretrained(model_part(args.source, "dit")).float()
        state, config = grow_depth(old.state_dict(), old.config, args.depth)
    except (LavinError, OSError, ValueError) as error:
        raise SystemExit(f"grow_jdit: {error}") from None
    new = JDiT(config)
    new.load_state_dict(state)
    gap = same_output(old, new)
    if gap > 1e-5:
        raise SystemExit(f"grow_jdit: the grown network differs from {args.source} by {gap:.3g}; nothing written")
    save_pretrained(new, config, str(args.out))
    params = sum(p.numel() for p in new.parameters())
    print(f"{args.out}: depth {old.config.depth} -> {config.depth}, {params / 1e6:.1f}M parameters, "
          f"output equal to {args.source} within {gap:.1g}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Write a copy of a trained ST-VAE with a query-guided decoder that decodes exactly as it does, to train on.

    python scripts/add_query_guide.py lavin-tiny-icl --out runs/vae-guided-init
    lavin train configs/lavin-tiny-icl/vae-decoder.toml --out runs/guided \
        --set 'model.preset="lavin-tiny-guided"' --set 'model.init="runs/vae-guided-init"'

``--copy-gate`` adds the decoder's copy gate (``lavin_core.stvae.copy_gate``) instead, and the
guide too when SOURCE has none; train it with ``model.preset = "lavin-tiny-copy"``. A new gate
takes ``START_GATE`` (1.8 %) of the query's pixels everywhere, and the check expects exactly that.

SOURCE is a model name (``lavin-tiny-icl``), a model folder or an ST-VAE ``save_pretrained`` folder
(e.g. ``RUN_DIR/export``). The guide branch's projections start at zero
(``lavin_core.stvae.guide``); the folder is written in float32 whatever SOURCE's dtype, and the
script checks, on random pixels and a random guide, that the new decoder's output equals SOURCE's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lavin_core.checkpoint import save_pretrained
from lavin_core.errors import LavinError
from lavin_core.pretrained.folders import model_part
from lavin_core.stvae import STVAE
from lavin_core.stvae.copy_gate import START_GATE


def same_output(old: STVAE, new: STVAE, seed: int = 0) -> float:
    """Largest absolute difference of ``new``'s pixels from what it must start at, for one random image
    and a random guide: ``old``'s pixels, blended ``START_GATE`` of the way to the guide when a copy gate was added."""
    generator = torch.Generator().manual_seed(seed)
    side = 4 * old.spatial_compression
    pixels = torch.rand(2, 3, 1, side, side, generator=generator) * 2 - 1
    guide = torch.rand(2, 3, 1, side, side, generator=generator) * 2 - 1
    with torch.no_grad():
        latents = old.encode(pixels)
        before = old.decode_raw(old.denormalize(latents), guide=guide if old.takes_guide else None)
        if new.config.query_copy and not old.config.query_copy:
            before = torch.lerp(before, guide, START_GATE)
        return float((before.clamp(-1.0, 1.0) - new.decode(latents, guide=guide)).abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="model name, model folder or ST-VAE save_pretrained folder")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not exist)")
    parser.add_argument("--copy-gate", action="store_true",
                        help="add the copy gate (and the guide if SOURCE has none) rather than the guide alone")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} already exists; pass a new --out folder (nothing was overwritten)")
    try:
        old = STVAE.from_pretrained(model_part(args.source, "vae")).float()
        new = old.with_copy_gate() if args.copy_gate else old.with_query_guide()
    except (LavinError, OSError, ValueError) as error:
        raise SystemExit(f"add_query_guide: {error}") from None
    gap = same_output(old, new)
    if gap > 1e-6:
        raise SystemExit(f"add_query_guide: the new decoder differs from {args.source} by {gap:.3g}; nothing written")
    save_pretrained(new, new.config, str(args.out))
    added = sum(p.numel() for p in new.decoder.parameters()) - sum(p.numel() for p in old.decoder.parameters())
    what = "query-guided decoder with a copy gate" if args.copy_gate else "query-guided decoder"
    start = f" blended {START_GATE:.1%} towards the guide" if args.copy_gate else ""
    print(f"{args.out}: {what} (+{added / 1e3:.0f}k parameters), output equal to {args.source}{start} "
          f"within {gap:.1g}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Write random stand-ins for the authors' checkpoints, in their exact layout, at any size.

    python scripts/make_official_checkpoint.py --dit /work/scratch/lavin_dit.safetensors --vae /work/scratch/stvae.pt --dtype bf16
    python scripts/make_official_checkpoint.py --dit small.safetensors --preset lavin-tiny --dtype fp32

``--dit`` writes ``lavin_dit.safetensors``'s layout for the J-DiT preset ``--preset`` (default
``lavin-3.4b``: 6.8 GB in bf16), ``--vae`` writes ``stvae.pt``'s (a torch zip file, tensors under
``state_dict``) for the ST-VAE preset ``--vae-preset``. At the official size the names, shapes
and order come from ``tests/data/*_state_dict.tsv`` (the authors' listings) and are checked
against the model. Tensors are drawn and written one at a time: memory stays at one tensor.
``lavin run --dit FILE --vae FILE`` and ``lavin_core.official.load_dit`` / ``load_vae`` read them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from lavin_core.jdit import JDiT
from lavin_core.jdit import get_preset as dit_preset
from lavin_core.official.random_checkpoint import checked_layout, write_random_safetensors, write_random_torch_file
from lavin_core.stvae import STVAE
from lavin_core.stvae import get_preset as vae_preset

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
LISTINGS = Path(__file__).resolve().parents[1] / "tests" / "data"
OFFICIAL = "lavin-3.4b"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dit", type=Path, help="write the J-DiT here (.safetensors)")
    parser.add_argument("--vae", type=Path, help="write the ST-VAE here (.pt)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--preset", default=OFFICIAL, help="J-DiT preset (default %(default)s)")
    parser.add_argument("--vae-preset", default=OFFICIAL, help="ST-VAE preset (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.dit and not args.vae:
        parser.error("nothing to write: pass --dit FILE.safetensors and/or --vae FILE.pt")
    dtype = DTYPES[args.dtype]
    jobs = []
    if args.dit:
        with torch.device("meta"):
            model = JDiT(dit_preset(args.preset))
        listing = LISTINGS / "lavin_dit_3.4b_state_dict.tsv" if args.preset == OFFICIAL else None
        jobs.append((args.dit, checked_layout(model, listing), write_random_safetensors))
    if args.vae:
        with torch.device("meta"):
            vae = STVAE(vae_preset(args.vae_preset))
        listing = LISTINGS / "stvae_state_dict.tsv" if args.vae_preset == OFFICIAL else None
        jobs.append((args.vae, checked_layout(vae, listing), write_random_torch_file))
    for path, layout, write in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write(path, layout, dtype, args.seed)
        count = sum(torch.Size(shape).numel() for _, shape in layout)
        print(f"{path}: {len(layout)} tensors, {count:,} values, {path.stat().st_size / 1e9:.2f} GB "
              f"in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

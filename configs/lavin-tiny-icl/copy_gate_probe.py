"""How far a decoder's copy gate opens, per task: mean gate, share of pixels above 0.5, and the
round trip of the truth (PSNR) decoded with it, each answer guided by its own query.

    python configs/lavin-tiny-icl/copy_gate_probe.py SOURCE [TASK ...] [--cases 4] [--seed 7]

SOURCE: a model name or folder, an ST-VAE ``save_pretrained`` folder (a run's ``export``), or a
``lavin train`` checkpoint folder of a ``lavin-tiny-copy`` ST-VAE (``RUN/checkpoints/step-...``,
raw weights). Seed 7 is a validation seed; the README's tables use 2026.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import registry
from lavin_core.evaluation.cases import draw_cases
from lavin_core.pretrained.folders import model_part
from lavin_core.stvae import STVAE, get_preset
from lavin_core.stvae.guide import guide_frames
from lavin_core.train.checkpointing import read_model_weights

TASKS = ("inpainting", "deblurring", "denoising", "colorization", "depth", "map_gamma", "frame_prediction")


def load_vae(source: str) -> STVAE:
    if (Path(source) / ".metadata").is_file():  # a training checkpoint
        vae = STVAE(get_preset("lavin-tiny-copy"))
        vae.load_state_dict(read_model_weights(source))
        return vae
    return STVAE.from_pretrained(model_part(source, "vae")).float()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    vae = load_vae(args.source).eval()
    if vae.decoder.copy is None:
        raise SystemExit(f"{args.source}: this ST-VAE's decoder has no copy gate (config.query_copy is false)")
    seen: dict[str, torch.Tensor] = {}
    vae.decoder.copy.register_forward_hook(lambda gate, inputs, _: seen.__setitem__("g", gate.gate(*inputs)))
    print("| task | mean gate | share above 0.5 | round trip PSNR |")
    print("|---|---|---|---|")
    for name in args.tasks:
        cases = draw_cases(registry.get_task(name, size=64), args.cases, num_pairs=1, seed=args.seed)
        truth, query = torch.stack([c.target for c in cases]), torch.stack([c.query for c in cases])
        decoded = vae.decode(vae.encode(truth), guide=guide_frames(query, truth.shape[2], tuple(truth.shape[-2:])))
        g = seen["g"]
        psnr = (10 * torch.log10(4.0 / (decoded - truth).pow(2).mean())).item()
        print(f"| {name} | {g.mean():.3f} | {(g > 0.5).float().mean():.3f} | {psnr:.2f} |")


if __name__ == "__main__":
    main()

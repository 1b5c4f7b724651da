"""How far a decoder's copy gate opens, per task, on the round trip of the truth or on a J-DiT's answers.

    python configs/lavin-tiny-icl/copy_gate_probe.py SOURCE [TASK ...] [--cases 4] [--seed 7]
    python configs/lavin-tiny-icl/copy_gate_probe.py SOURCE [TASK ...] --answers lavin-tiny-icl [--cases 8]

SOURCE: a model name or folder, an ST-VAE ``save_pretrained`` folder (a run's ``export``), or a
``lavin train`` checkpoint folder of a ``lavin-tiny-copy`` ST-VAE (``RUN/checkpoints/step-...``,
raw weights). Seed 7 is a validation seed; the README's tables use 2026.

Without ``--answers``: the true targets' latents decoded, each guided by its own query (mean
gate, share of pixels above 0.5, PSNR). With ``--answers MODEL``: MODEL's J-DiT samples one answer
per case (3 pairs, its recommended guidance and steps) and SOURCE's decoder decodes it. The table
splits the pixels into those where the truth is the query (``same``: within 0.03 in every
channel) and the rest, and scores the answer, the copy of the query, the decoder without its gate
(``g = 0``) and the same decoding under an oracle gate (1 on ``same``, 0 elsewhere): how much a
gate that knew where to copy would add.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

import registry
from lavin_core.evaluation.cases import draw_cases
from lavin_core.pretrained.folders import model_part
from lavin_core.stvae import STVAE, get_preset
from lavin_core.stvae.guide import guide_frames
from lavin_core.train.checkpointing import read_model_weights

TASKS = ("inpainting", "deblurring", "denoising", "colorization", "depth", "map_gamma", "frame_prediction")
#: Pixels whose truth lies within this of the query in every channel count as ``same``.
SAME = 0.03


def load_vae(source: str) -> STVAE:
    if (Path(source) / ".metadata").is_file():  # a training checkpoint
        vae = STVAE(get_preset("lavin-tiny-copy"))
        vae.load_state_dict(read_model_weights(source))
        return vae
    return STVAE.from_pretrained(model_part(source, "vae")).float()


def psnr(a: Tensor, b: Tensor, where: Tensor | None = None) -> float:
    error = (a - b).pow(2)
    mse = error.mean() if where is None else (error * where).sum() / (where.expand_as(error).sum()).clamp(min=1)
    return (10 * torch.log10(4.0 / mse)).item()


def answers_row(name: str, pipe, gates: list, cases, seed: int) -> str:
    gates.clear()
    out = pipe([c.context() for c in cases], num_samples=1, seed=seed, processing_size=0, progress=False)
    answer = torch.stack([s[0] for s in out.samples]).float()
    g, decoded, query = (torch.cat([step[i] for step in gates]) for i in range(3))
    truth = torch.stack([c.target for c in cases]).float()
    same = ((truth - query).abs().amax(1, keepdim=True) < SAME).float()
    raw = decoded.clamp(-1, 1)
    oracle = torch.lerp(raw, query, same)
    mean_gate = lambda where: ((g * where).sum() / where.sum().clamp(min=1)).item()  # noqa: E731
    return (f"| {name} | {same.mean():.2f} | {mean_gate(same):.2f} / {mean_gate(1 - same):.2f} | "
            f"{psnr(answer, truth):.2f} | {psnr(query, truth):.2f} | {psnr(raw, truth):.2f} | {psnr(oracle, truth):.2f} | "
            f"{psnr(answer, truth, 1 - same):.2f} / {psnr(query, truth, 1 - same):.2f} / {psnr(raw, truth, 1 - same):.2f} |")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--answers", metavar="MODEL", help="decode this model's sampled answers instead of the truth")
    args = parser.parse_args()
    vae = load_vae(args.source).eval()
    if vae.decoder.copy is None:
        raise SystemExit(f"{args.source}: this ST-VAE's decoder has no copy gate (config.query_copy is false)")
    gates: list[tuple[Tensor, Tensor, Tensor]] = []
    vae.decoder.copy.register_forward_hook(
        lambda gate, inputs, _: gates.append((gate.gate(*inputs).float(), inputs[2].float(), inputs[3].float())))
    if args.answers:
        from lavin_core.pipeline import load_pipeline

        pipe = load_pipeline(args.answers)
        pipe.encoder = vae  # the same encoder (frozen in every decoder run), SOURCE's decoder
        print("| task | same share | mean gate, same / rest | answer PSNR | copy | no gate | oracle gate "
              "| rest only: answer / copy / no gate |")
        print("|---|---|---|---|---|---|---|---|")
    else:
        print("| task | mean gate | share above 0.5 | round trip PSNR |")
        print("|---|---|---|---|")
    for name in args.tasks:
        cases = draw_cases(registry.get_task(name, size=64), args.cases, num_pairs=3 if args.answers else 1,
                           seed=args.seed)
        if args.answers:
            print(answers_row(name, pipe, gates, cases, args.seed))
            continue
        gates.clear()
        truth, query = torch.stack([c.target for c in cases]), torch.stack([c.query for c in cases])
        decoded = vae.decode(vae.encode(truth), guide=guide_frames(query, truth.shape[2], tuple(truth.shape[-2:])))
        g = gates[0][0]
        print(f"| {name} | {g.mean():.3f} | {(g > 0.5).float().mean():.3f} | {psnr(decoded, truth):.2f} |")


if __name__ == "__main__":
    main()

"""How far a model's sampled latents are from the truth's, per task, and whether Gaussian noise of
that size decodes alike (the measurement behind ``vae.latent_noise``).

    python configs/lavin-tiny-icl/latent_error.py MODEL [TASK ...] [--cases 8] [--seed 7]

For each task: the error's RMS over the true latents' RMS, the share of its energy that survives
2x2 average pooling (white noise: 0.25; higher is smoother), and PSNR against the truth of the
decoded sample, of the decoded true latents (the round trip) and of the true latents plus Gaussian
noise of the error's standard deviation, beside the plain copy of the query. One sample per case at
the model's recommended settings, the query-guided decoder guided by the query as in the pipeline.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import registry
from lavin_core.evaluation.cases import draw_cases
from lavin_core.pipeline import load_pipeline
from lavin_core.stvae.guide import guide_frames

TASKS = ("inpainting", "denoising", "deblurring", "colorization", "semantic_segmentation", "map_gamma")


def psnr(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR of pixels in [-1, 1] (peak-to-peak 2)."""
    return (10 * torch.log10(4.0 / (prediction.clamp(-1, 1) - truth).pow(2).mean())).item()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7, help="cases and noise (default 7, a validation seed)")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    vae = pipe.encoder
    generator = torch.Generator().manual_seed(args.seed)
    print("| task | error / RMS | smooth share | PSNR: sample | round trip | truth + noise | copy of query |")
    print("|---|---|---|---|---|---|---|")
    for name in args.tasks:
        cases = draw_cases(registry.get_task(name, size=64), args.cases, num_pairs=3, seed=args.seed)
        sampled = pipe([case.context() for case in cases], num_samples=1, output_type="latent", progress=False,
                       generator=generator)
        estimate = torch.stack(list(sampled.latents))
        truth, query = torch.stack([c.target for c in cases]), torch.stack([c.query for c in cases])
        latents = vae.encode(truth)
        error = estimate - latents
        guide = guide_frames(query, truth.shape[2], tuple(truth.shape[-2:])) if vae.takes_guide else None
        decoded = {key: vae.decode(z, guide=guide) for key, z in
                   (("sample", estimate), ("round trip", latents),
                    ("noise", latents + torch.randn(latents.shape, generator=generator) * error.std()))}
        relative = (error.pow(2).mean() / latents.pow(2).mean()).sqrt().item()
        smooth = (F.avg_pool3d(error, (1, 2, 2)).pow(2).mean() / error.pow(2).mean()).item()
        print(f"| {name} | {relative:.3f} | {smooth:.2f} | {psnr(decoded['sample'], truth):.2f} | "
              f"{psnr(decoded['round trip'], truth):.2f} | {psnr(decoded['noise'], truth):.2f} | "
              f"{psnr(query, truth):.2f} |", flush=True)


if __name__ == "__main__":
    main()

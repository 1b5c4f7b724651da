"""The authors' networks at full size on the CPU: load time, peak memory against the weights, forward time.

    python scripts/make_official_checkpoint.py --dit /work/scratch/official/lavin_dit.safetensors \
        --vae /work/scratch/official/stvae.pt --dtype bf16          # once: random weights, exact layout
    python benchmarks/bench_official.py --dit /work/scratch/official/lavin_dit.safetensors \
        --vae /work/scratch/official/stvae.pt

J-DiT: ``official.load_dit`` in ``--dtype`` (bf16), then one conditional forward at 64x64 pixels
(8x8 latents) with one example pair: the conditional stream holds [input, target, query], 48
tokens, the target stream 16. ST-VAE: ``official.load_vae`` in ``--vae-dtype``, then encode and
decode one 256x256 image (float32 by default: on CPUs without native bf16, such as this AVX2
machine, PyTorch's bf16 convolutions run some 50x slower than float32; the ratio is printed). For each: seconds to load, seconds for the forward, and peak resident
memory (``VmHWM``, reset before each part) against the size of the weights file. Memory-mapped
weights count as resident once touched, so the peak after the forward is the honest one.

Ratios in the same run tell whether bf16 is slow on this CPU: one block's SwiGLU matmul at the
benchmark's token count, and a small 3x3 convolution, each float32 time over bf16 time (1 or
more: bf16 is as fast; far below 1: this CPU lacks fast bf16 kernels for it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from lavin_core.official import load_dit, load_vae

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
GB = 1e9


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Start a new ``VmHWM`` (Linux: writing 5 to clear_refs resets the peak to the current RSS)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_gb() -> float:
    return _status_kb("VmHWM") * 1024 / GB


def matmul_ratio(tokens: int, hidden: int, width: int, repeats: int = 5) -> tuple[float, float]:
    """GFLOP/s of ``(tokens, hidden) @ (hidden, width)`` in float32 and bf16, timed alternately."""
    flops = 2 * tokens * hidden * width
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, w = torch.randn(tokens, hidden, dtype=dtype), torch.randn(width, hidden, dtype=dtype)
        torch.nn.functional.linear(a, w)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.nn.functional.linear(a, w)
        rates[dtype] = flops * repeats / (time.perf_counter() - start) / GB
    return rates[torch.float32], rates[torch.bfloat16]


def conv_ratio(channels: int = 64, size: int = 64) -> tuple[float, float]:
    """GFLOP/s of a 3x3 convolution ``channels -> channels`` on ``size x size`` in float32 and bf16."""
    flops = 2 * channels * channels * 9 * size * size
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(dtype)
        x = torch.randn(1, channels, size, size, dtype=dtype)
        with torch.inference_mode():
            conv(x)
            start = time.perf_counter()
            conv(x)
        rates[dtype] = flops / (time.perf_counter() - start) / GB
    return rates[torch.float32], rates[torch.bfloat16]


def bench_dit(path: str, dtype: torch.dtype) -> None:
    size = os.path.getsize(path) / GB
    reset_peak()
    start = time.perf_counter()
    model = load_dit(path, dtype=dtype)
    load_s = time.perf_counter() - start
    after_load = peak_gb()
    params = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    z_t = torch.randn(1, 16, 1, 8, 8, generator=generator, dtype=dtype)  # 64x64 pixels
    cond = torch.randn(1, 16, 3, 8, 8, generator=generator, dtype=dtype)  # input, target, query
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(z_t, torch.tensor([0.5]), cond)
        forward_s = time.perf_counter() - start
        start = time.perf_counter()
        model(z_t, torch.tensor([0.5]), cond)
        second_s = time.perf_counter() - start
    assert torch.isfinite(out.float()).all(), "non-finite output"
    print(f"J-DiT   {params:,} parameters, {path} ({size:.2f} GB)")
    print(f"  load {load_s:.2f} s; peak RSS after load {after_load:.2f} GB = {after_load / size:.2f} x the file")
    print(f"  conditional forward 64x64, 1 pair (64 tokens): first {forward_s:.1f} s (reads the weights "
          f"from the page cache or disk), second {second_s:.1f} s")
    print(f"  peak RSS {peak_gb():.2f} GB = {peak_gb() / size:.2f} x the file")
    cfg = model.config
    fp32, bf16 = matmul_ratio(64, cfg.hidden_size, cfg.mlp_width)
    print(f"  SwiGLU matmul (64 x {cfg.hidden_size} x {cfg.mlp_width}): fp32 {fp32:.1f} GFLOP/s, "
          f"bf16 {bf16:.1f} GFLOP/s, bf16 / fp32 speed = {bf16 / fp32:.2f}")


def bench_vae(path: str, dtype: torch.dtype, size: int) -> None:
    file_gb = os.path.getsize(path) / GB
    reset_peak()
    start = time.perf_counter()
    vae = load_vae(path, dtype=dtype)
    load_s = time.perf_counter() - start
    pixels = (torch.rand(1, 3, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dtype)
    with torch.inference_mode():
        start = time.perf_counter()
        latents = vae.encode(pixels)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        image = vae.decode(latents)
        decode_s = time.perf_counter() - start
    assert image.shape == pixels.shape and torch.isfinite(image.float()).all()
    params = sum(p.numel() for p in vae.parameters())
    weights_gb = sum(p.numel() * p.element_size() for p in vae.parameters()) / GB
    print(f"ST-VAE  {params:,} parameters, {path} ({file_gb:.2f} GB), computing in {dtype} "
          f"({weights_gb:.2f} GB of weights in memory)")
    print(f"  load {load_s:.2f} s; encode {size}x{size} {encode_s:.1f} s, decode {decode_s:.1f} s; "
          f"peak RSS {peak_gb():.2f} GB = {peak_gb() / file_gb:.2f} x the file")
    fp32, bf16 = conv_ratio()
    print(f"  3x3 conv (64 channels, 64x64): fp32 {fp32:.2f} GFLOP/s, bf16 {bf16:.3f} GFLOP/s, "
          f"bf16 / fp32 speed = {bf16 / fp32:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dit", help="lavin_dit.safetensors (or a stand-in from make_official_checkpoint.py)")
    parser.add_argument("--vae", help="stvae.pt")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="J-DiT dtype")
    parser.add_argument("--vae-dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--vae-size", type=int, default=256)
    args = parser.parse_args()
    if not args.dit and not args.vae:
        parser.error("pass --dit and/or --vae")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.vae:
        bench_vae(args.vae, DTYPES[args.vae_dtype], args.vae_size)
    if args.dit:
        bench_dit(args.dit, DTYPES[args.dtype])


if __name__ == "__main__":
    main()

"""ST-VAE throughput on the CPU: encode and decode, untiled vs tiled, and the one-frame fast path.

    OMP_NUM_THREADS=1 python benchmarks/bench_stvae.py                     # lavin-tiny, 128x128 images
    python benchmarks/bench_stvae.py --preset lavin-tiny --size 256 --frames 9 --batch 1

Prints frames per second for encode and decode, untiled and tiled (tile ``--tile`` pixels,
``--overlap`` shared), the tiled / untiled ratios, and for images the speed of the one-frame
path (a 2D convolution with the time taps summed) over the padded 3D convolution it replaces.
All modes run in one process, timed alternately call by call (median), so that other load on a
shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lavin_core.stvae import STVAE, TilingConfig, get_preset
from lavin_core.stvae.layers import CausalConv3d, pad_time_causal


def median_seconds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each entry, after one warm-up call each, timed alternately."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def padded_3d(conv: CausalConv3d, x: torch.Tensor) -> torch.Tensor:
    """The causal convolution without the one-frame shortcut (the baseline for images)."""
    return conv.conv(pad_time_causal(x, conv.time_pad))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lavin-tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=1, help="1 (images) or 1 + 4k")
    parser.add_argument("--size", type=int, default=128, help="height and width in pixels")
    parser.add_argument("--tile", type=int, default=64, help="tile size in pixels for the tiled mode")
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    vae = STVAE(get_preset(args.preset)).eval()
    pixels = torch.rand(args.batch, 3, args.frames, args.size, args.size) * 2 - 1
    tiling = TilingConfig(tile_size=args.tile, tile_overlap=args.overlap)
    with torch.no_grad():
        latents = vae.encode(pixels)

    def run(fn: Callable[[], object], tiled: bool) -> Callable[[], object]:
        def call() -> object:
            if tiled:
                vae.enable_tiling(tiling)
            try:
                with torch.no_grad():
                    return fn()
            finally:
                vae.disable_tiling()
        return call

    calls = {
        "encode": run(lambda: vae.encode(pixels), tiled=False),
        "encode tiled": run(lambda: vae.encode(pixels), tiled=True),
        "decode": run(lambda: vae.decode(latents), tiled=False),
        "decode tiled": run(lambda: vae.decode(latents), tiled=True),
    }
    if args.frames == 1:
        fast = CausalConv3d.forward

        def slow_path(call: Callable[[], object]) -> Callable[[], object]:
            def patched() -> object:
                CausalConv3d.forward = padded_3d  # type: ignore[method-assign]
                try:
                    return call()
                finally:
                    CausalConv3d.forward = fast  # type: ignore[method-assign]
            return patched

        calls["encode 3d path"] = slow_path(calls["encode"])
        calls["decode 3d path"] = slow_path(calls["decode"])

    seconds = median_seconds(calls, args.repeats)
    frames = args.batch * args.frames
    print(f"{args.preset}: batch {args.batch} x {args.frames} frame(s) of {args.size}x{args.size}, "
          f"{torch.get_num_threads()} thread(s); tiles {args.tile} px, overlap {args.overlap}")
    for name, s in seconds.items():
        print(f"  {name:16s} {s * 1e3:9.1f} ms  {frames / s:8.2f} frames/s")
    for op in ("encode", "decode"):
        print(f"  {op} tiled / untiled time: {seconds[f'{op} tiled'] / seconds[op]:.2f}x")
        if f"{op} 3d path" in seconds:
            print(f"  {op} one-frame path speed-up over the padded 3D conv: "
                  f"{seconds[f'{op} 3d path'] / seconds[op]:.2f}x")


if __name__ == "__main__":
    main()

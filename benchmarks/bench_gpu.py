"""``python benchmarks/bench_gpu.py``: the fused kernel and the fast inference path, timed against their baselines
in one run. Prints a table and writes JSON. Needs a CUDA GPU (and Triton for the fused rows).

Three sections, each with its baseline in the same process:
1. kernel: QK RMSNorm + 3D RoPE at the preset's shapes for ``image_size`` and ``pairs`` (3.4B at
   512x512 with 4 pairs: 10,240 tokens, 32 query / 8 key-value heads of 72): the fused Triton
   kernel, the PyTorch reference, and ``torch.compile`` of the reference; forward and backward,
   in ms and effective GB/s (forward reads and writes q and k once: ``2 * bytes(q, k)``; backward
   reads x and the gradient and writes dx: ``3 * bytes(q, k)``).
2. forward: one J-DiT conditional forward (``2 * pairs + 1`` context frames + 1 target frame), eager
   with the reference path, eager with the fused kernel, regionally compiled, and its CUDA graph.
3. sampling: ``steps`` Euler steps with CFG (conditional and null passes, each at its own length),
   the same variants; the fast path's first run includes its compilation and graph capture, and
   is reported apart as "first image".

The model has random weights (the zero-initialised adaLN and output layers are filled too, so that
every block does work and the outputs are worth comparing); bf16 throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch
from attrs import validators as v
from torch import Tensor, nn

from lavin_core.pipeline.compiled import CUDAGraphDenoiser, compile_blocks, prefer_cudnn_attention
from lavin_core.jdit.qk_norm_rope import qk_norm_rope_reference, triton_available
from lavin_core.evaluation.table import format_table
from lavin_core.errors import LavinError
from lavin_core.jdit import JDiT, get_preset
from lavin_core.jdit.rope import rope_tables
from lavin_core.samplers import EulerSampler, null_context_from_cond

GB = 1e9


@attrs.frozen(kw_only=True)
class BenchOptions:
    """What ``benchmarks/bench_gpu.py`` runs; sections can be skipped to save time."""

    preset: str = "lavin-3.4b"
    image_size: int = attrs.field(default=512, validator=[v.instance_of(int), v.gt(0)])
    pairs: int = attrs.field(default=4, validator=[v.instance_of(int), v.ge(0)])
    steps: int = attrs.field(default=19, validator=[v.instance_of(int), v.gt(0)])
    guidance_scale: float = attrs.field(default=1.5, converter=float)
    compile: bool = True
    cuda_graphs: bool = True
    model_sections: bool = True
    seed: int = 0


# --- timing ---------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_kernel_ms(fn: Callable[[], Any], device: torch.device) -> float:
    """Median ms of a short call; on CUDA Triton's ``do_bench`` (it flushes L2 between calls)."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))
    return time_call_ms(fn, device, reps=3)


def time_call_ms(fn: Callable[[], Any], device: torch.device, *, reps: int, warmup: int = 1) -> float:
    """Median wall-clock ms of ``fn`` over ``reps`` calls after ``warmup`` calls (device synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _progress(message: str) -> None:
    print(f"bench-gpu: {message}", flush=True)


@contextlib.contextmanager
def kernels_backend(name: str) -> Iterator[None]:
    """Sets ``LAVIN_KERNELS`` for the duration (eager code reads it at every call)."""
    saved = os.environ.get("LAVIN_KERNELS")
    os.environ["LAVIN_KERNELS"] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LAVIN_KERNELS", None)
        else:
            os.environ["LAVIN_KERNELS"] = saved


@contextlib.contextmanager
def replayable_backward() -> Iterator[None]:
    """Compiled backwards keep their saved tensors, so a backward can be timed by replaying it
    (``retain_graph``); by default they donate (free) them, which forbids that."""
    config = torch._functorch.config
    with config.patch(donated_buffer=False) if hasattr(config, "donated_buffer") else contextlib.nullcontext():
        yield


def relative_error(actual: Tensor, expected: Tensor) -> float:
    expected = expected.double()
    return ((actual.double() - expected).norm() / expected.norm().clamp_min(1e-30)).item()


# --- shapes and the model ------------------------------------------------------------------------


def context_shapes(options: BenchOptions, in_channels: int, downsample: int = 8) -> dict[str, tuple[int, ...]]:
    """Latent shapes of one sampling run: target z ``(1, C, 1, h, w)``, the conditional context
    ``(1, C, 2 * pairs + 1, h, w)`` and the null context ``[0, query]`` ``(1, C, 2, h, w)``."""
    if options.image_size % (2 * downsample):
        raise ValueError(f"image_size {options.image_size} must be a multiple of {2 * downsample} (VAE x8, patch 2)")
    side = options.image_size // downsample
    return {
        "z": (1, in_channels, 1, side, side),
        "cond": (1, in_channels, 2 * options.pairs + 1, side, side),
        "null": (1, in_channels, 2, side, side),
    }


def fill_zero_parameters(model: nn.Module, *, std: float = 0.02) -> None:
    """Random values in the parameters that the official init zeroes (adaLN, output layer, biases)."""
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.normal_(0.0, std)


def build_model(options: BenchOptions, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The preset's J-DiT with random weights, built directly on ``device``, in ``dtype``, eval, no grad."""
    torch.manual_seed(options.seed)
    with torch.device(device):
        model = JDiT(get_preset(options.preset))
    fill_zero_parameters(model)
    return model.to(dtype).eval().requires_grad_(False)


# --- section 1: the kernel ------------------------------------------------------------------------


def bench_kernel(options: BenchOptions, device: torch.device, *, compile_reference: bool) -> list[dict[str, Any]]:
    """Rows (variant, pass, ms, GB/s, vs reference) for QK-norm + RoPE at the preset's full-context shapes."""
    config = get_preset(options.preset)
    shapes = context_shapes(options, config.in_channels)
    frames = shapes["cond"][2] + shapes["z"][2]
    grid = shapes["z"][-1] // config.patch_size
    seq_len = frames * grid * grid
    heads, kv_heads, head_dim = config.num_heads, config.num_kv_heads, config.head_dim
    gen = torch.Generator(device).manual_seed(options.seed)
    dtype = torch.bfloat16
    q = torch.randn(1, seq_len, heads * head_dim, device=device, dtype=dtype, generator=gen)
    k = torch.randn(1, seq_len, kv_heads * head_dim, device=device, dtype=dtype, generator=gen)
    qw = 1 + 0.1 * torch.randn(heads * head_dim, device=device, dtype=dtype, generator=gen)
    kw = 1 + 0.1 * torch.randn(kv_heads * head_dim, device=device, dtype=dtype, generator=gen)
    cos, sin = rope_tables(frames, grid, grid, head_dim, device=device)
    size = (q.numel() + k.numel()) * q.element_size()
    kwargs = dict(num_heads=heads, num_kv_heads=kv_heads, eps=config.norm_eps)

    variants: dict[str, Callable] = {"reference (eager)": qk_norm_rope_reference}
    if compile_reference:
        variants["reference (torch.compile)"] = torch.compile(qk_norm_rope_reference, dynamic=False)
    if triton_available():
        from kernels.qk_norm_rope_triton import qk_norm_rope_triton

        variants["fused (triton)"] = qk_norm_rope_triton

    rows, baseline = [], {}
    expected = qk_norm_rope_reference(q.float(), k.float(), qw.float(), kw.float(), cos, sin, **kwargs)
    with replayable_backward():
        for name, fn in variants.items():
            inputs = [t.detach().requires_grad_() for t in (q, k, qw, kw)]
            try:
                start = time.perf_counter()
                out = fn(*inputs, cos, sin, **kwargs)  # first call: compiles (and autotunes) where it can
                grads = [torch.randn_like(o) for o in out]
                torch.autograd.grad(out, inputs, grads)
                _sync(device)
                first_s = time.perf_counter() - start
                error = max(relative_error(a, b) for a, b in zip(out, expected))
                with torch.no_grad():
                    fwd = time_kernel_ms(lambda: fn(q, k, qw, kw, cos, sin, **kwargs), device)
                out = fn(*inputs, cos, sin, **kwargs)
                bwd = time_kernel_ms(lambda: torch.autograd.grad(out, inputs, grads, retain_graph=True), device)
            except Exception as exc:  # noqa: BLE001 - one chance on a borrowed GPU: keep the other rows
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                _progress(f"kernel variant {name!r} failed: {message}")
                rows += [{"variant": name, "pass": p, "ms": None, "GB/s": None, "speedup": None, "first_call_s": None,
                          "rel_error_vs_fp32": None, "error": message} for p in ("forward", "backward")]
                continue
            _progress(f"{name}: forward {fwd:.3f} ms, backward {bwd:.3f} ms (first call {first_s:.1f} s)")
            for pass_name, ms, moved in (("forward", fwd, 2 * size), ("backward", bwd, 3 * size)):
                baseline.setdefault(pass_name, ms)
                rows.append({
                    "variant": name, "pass": pass_name, "ms": ms, "GB/s": moved / (ms * 1e-3) / GB,
                    "speedup": baseline[pass_name] / ms, "first_call_s": first_s, "rel_error_vs_fp32": error,
                })
    return rows


# --- sections 2 and 3: the model ------------------------------------------------------------------


def bench_model(options: BenchOptions, model: nn.Module, device: torch.device) -> dict[str, list[dict[str, Any]]]:
    """Forward and sampling rows for the variants eager-reference, eager-fused, compiled, CUDA graphs.

    Compiles ``model``'s blocks in place when ``options.compile`` (so the eager variants run first).
    """
    dtype = next(model.parameters()).dtype
    shapes = context_shapes(options, model.config.in_channels)
    gen = torch.Generator(device).manual_seed(options.seed + 1)
    z = torch.randn(shapes["z"], device=device, dtype=dtype, generator=gen)
    cond = torch.randn(shapes["cond"], device=device, dtype=dtype, generator=gen)
    null = null_context_from_cond(cond)
    t = torch.full((1,), 0.7, device=device, dtype=dtype)
    sampler = EulerSampler()
    if options.steps != sampler.default_steps:
        sampler = EulerSampler(schedule="uniform", default_steps=options.steps)

    def sample(denoiser: nn.Module) -> Tensor:
        with torch.no_grad():
            return sampler.sample(denoiser, z, cond, null_cond=null, guidance_scale=options.guidance_scale)

    def forward(denoiser: nn.Module) -> Tensor:
        with torch.no_grad():
            return denoiser(z, t, cond)

    forward_rows, sampling_rows, outputs = [], [], []

    def record(name: str, denoiser: nn.Module, backend: str, *, cudnn_first: bool, first_image: bool = False) -> None:
        """Times one variant; a variant that fails is reported (one line) and the run goes on."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(kernels_backend(backend))
            if cudnn_first:
                stack.enter_context(prefer_cudnn_attention())
            try:
                start = time.perf_counter()
                out = sample(denoiser)  # warm-up; for the fast paths also compile and capture
                _sync(device)
                first_s = time.perf_counter() - start
                fwd_ms = time_call_ms(lambda: forward(denoiser), device, reps=5)
                sample_ms = time_call_ms(lambda: sample(denoiser), device, reps=2, warmup=0)
            except Exception as exc:  # noqa: BLE001 - one chance on a borrowed GPU: keep the other rows
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                _progress(f"variant {name!r} failed: {error}")
                forward_rows.append({"variant": name, "ms": None, "error": error})
                sampling_rows.append({"variant": name, "ms": None, "first_image_s": None, "error": error})
                outputs.append(None)
                return
        outputs.append(out)
        _progress(f"{name}: forward {fwd_ms:.1f} ms, sampling {sample_ms / 1e3:.2f} s (first run {first_s:.1f} s)")
        forward_rows.append({"variant": name, "ms": fwd_ms})
        sampling_rows.append({"variant": name, "ms": sample_ms, "first_image_s": first_s if first_image else None})

    record("eager, reference kernels", model, "torch", cudnn_first=False)
    fused = triton_available() and device.type == "cuda"
    if fused:
        record("eager, fused kernel", model, "auto", cudnn_first=False)
    fast_name = "fused kernel" if fused else "reference kernels"
    if device.type == "cuda":
        record(f"eager, {fast_name}, cuDNN attention first", model, "auto", cudnn_first=True)
    if options.compile:
        compile_blocks(model)
        record("regional compile" + (", cuDNN first" if device.type == "cuda" else ""), model, "auto",
               cudnn_first=device.type == "cuda", first_image=True)
    if options.cuda_graphs and device.type == "cuda":
        name = "CUDA graphs" + (" + regional compile" if options.compile else "") + ", cuDNN first"
        record(name, CUDAGraphDenoiser(model), "auto", cudnn_first=True, first_image=True)
    # Ratios against the first (eager, reference) variant; outputs compared with it too.
    for rows in (forward_rows, sampling_rows):
        for row in rows:
            row["speedup"] = rows[0]["ms"] / row["ms"] if row["ms"] and rows[0]["ms"] else None
    for row, out in zip(sampling_rows, outputs):
        ok = out is not None and outputs[0] is not None
        row["rel_error_vs_eager_reference"] = relative_error(out, outputs[0]) if ok else None
    return {"forward": forward_rows, "sampling": sampling_rows}


# --- the whole run --------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _row(row: dict[str, Any], columns: list[str]) -> list[str]:
    return [("FAILED" if column == "ms" and row.get("error") else _fmt(row.get(column))) for column in columns]


def _best(rows: list[dict[str, Any]], prefix: str, key: str = "ms", **match: Any) -> dict[str, Any] | None:
    """The fastest measured row whose variant starts with ``prefix`` (and whose fields equal ``match``)."""
    found = [r for r in rows if r["variant"].startswith(prefix) and r.get(key) is not None
             and all(r.get(k) == v for k, v in match.items())]
    return min(found, key=lambda r: r[key]) if found else None


def check_targets(report: dict[str, Any]) -> list[list[str]]:
    """Rows (target, measured, met?) for the issue's targets, from what this run measured."""
    rows = []

    def add(target: str, measured: float | None, ok: bool | None, unit: str = "") -> None:
        shown = "not measured" if measured is None else f"{_fmt(measured)}{unit}"
        rows.append([target, shown, "-" if ok is None else ("yes" if ok else "NO")])

    for pass_name, floor in (("forward", 2000.0), ("backward", 1500.0)):
        fused = _best(report["kernel"], "fused", **{"pass": pass_name})
        ref = _best(report["kernel"], "reference (eager)", **{"pass": pass_name})
        comp = _best(report["kernel"], "reference (torch.compile)", **{"pass": pass_name})
        add(f"fused {pass_name} >= {floor:.0f} GB/s", fused and fused["GB/s"], fused and fused["GB/s"] >= floor,
            " GB/s")
        if pass_name == "forward":
            vs_ref = fused and ref and ref["ms"] / fused["ms"]
            vs_comp = fused and comp and comp["ms"] / fused["ms"]
            add("fused forward >= 10x reference", vs_ref, vs_ref and vs_ref >= 10, "x")
            add("fused forward >= 3x torch.compile(reference)", vs_comp, vs_comp and vs_comp >= 3, "x")
    if "sampling" in report:
        fast = [r for r in report["sampling"] if r.get("first_image_s") is not None and r.get("ms")]
        best = min(fast, key=lambda r: r["ms"]) if fast else None
        add(f"{report['options']['steps']} steps with CFG <= 2.2 s", best and best["ms"] / 1e3,
            best and best["ms"] <= 2200, " s")
        add("warm-up before the first image <= 60 s", best and best["first_image_s"],
            best and best["first_image_s"] <= 60, " s")
        error = best and best.get("rel_error_vs_eager_reference")
        add("fast output vs eager, relative error <= 1e-2", error, None if error is None else error <= 1e-2)
    return rows


def format_report(report: dict[str, Any]) -> str:
    """The printed tables of a ``run_benchmark`` report."""
    parts = [f"device: {report['device']}  torch {report['torch']}  triton {report['triton']}"]
    kernel_cols = ["variant", "pass", "ms", "GB/s", "speedup", "first_call_s", "rel_error_vs_fp32"]
    parts += ["", "QK RMSNorm + 3D RoPE, " + report["kernel_shapes"],
              format_table(kernel_cols, [_row(r, kernel_cols) for r in report["kernel"]])]
    if "forward" in report:
        parts += ["", f"J-DiT forward ({report['model_shapes']})",
                  format_table(["variant", "ms", "speedup"],
                               [_row(r, ["variant", "ms", "speedup"]) for r in report["forward"]])]
        cols = ["variant", "ms", "speedup", "first_image_s", "rel_error_vs_eager_reference"]
        parts += ["", f"{report['options']['steps']} Euler steps with CFG {report['options']['guidance_scale']}",
                  format_table(cols, [_row(r, cols) for r in report["sampling"]])]
    parts += ["", "targets (issue 9)", format_table(["target", "measured", "met"], check_targets(report))]
    if "peak_memory_gb" in report:
        parts.append(f"\npeak GPU memory: {report['peak_memory_gb']:.1f} GB")
    return "\n".join(parts)


def run_benchmark(options: BenchOptions, *, save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Runs the sections ``options`` asks for on the current CUDA device; returns the JSON-ready report.

    ``save(report)`` is called after each section with what is measured so far, so that a run cut
    short still leaves its numbers behind; progress lines are printed as variants finish.
    """
    if not torch.cuda.is_available():
        raise LavinError("this benchmark needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured")
    device = torch.device("cuda")
    config = get_preset(options.preset)
    shapes = context_shapes(options, config.in_channels)
    tokens = (shapes["cond"][2] + 1) * (shapes["z"][-1] // config.patch_size) ** 2
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "triton": __import__("triton").__version__ if triton_available() else None,
        "options": attrs.asdict(options),
        "kernel_shapes": f"{tokens} tokens, {config.num_heads}/{config.num_kv_heads} heads x {config.head_dim}, bf16",
        "model_shapes": f"{options.preset}, {options.image_size}x{options.image_size}, {options.pairs} pairs, "
        f"{tokens} tokens",
    }
    save = save or (lambda report: None)
    report["kernel"] = bench_kernel(options, device, compile_reference=options.compile)
    save(report)
    if options.model_sections:
        start = time.perf_counter()
        model = build_model(options, device, torch.bfloat16)
        _progress(f"built {options.preset} with random bf16 weights in {time.perf_counter() - start:.1f} s")
        report.update(bench_model(options, model, device))
        report["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / GB
        save(report)
    return report


def write_report(report: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/bench_gpu.py",
        description="Builds a J-DiT preset with random bf16 weights on the GPU and times, in one run: the fused "
        "kernel vs the PyTorch reference vs torch.compile of it (GB/s, forward and backward), one J-DiT "
        "forward, and Euler sampling with CFG (eager, regional compile, CUDA graphs). Prints a table and "
        "writes JSON. Needs CUDA.",
    )
    parser.add_argument("--preset", default="lavin-3.4b", help="J-DiT preset (default: lavin-3.4b)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default: 512)")
    parser.add_argument("--pairs", type=int, default=4, help="example pairs in the context (default: 4)")
    parser.add_argument("--steps", type=int, default=19, help="Euler steps (default: 19, the official grid)")
    parser.add_argument("--guidance-scale", type=float, default=1.5, help="CFG scale (default: 1.5)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (reference kernel and regional)")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="skip the CUDA-graph variant")
    parser.add_argument("--kernel-only", action="store_true", help="time only the QK-norm + RoPE kernel")
    parser.add_argument("--json", default="bench_gpu.json", help="where to write the results (default: bench_gpu.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = BenchOptions(
        preset=args.preset,
        image_size=args.size,
        pairs=args.pairs,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        compile=not args.no_compile,
        cuda_graphs=not args.no_cuda_graphs,
        model_sections=not args.kernel_only,
    )
    report = run_benchmark(options, save=lambda partial: write_report(partial, args.json))
    print()
    print(format_report(report))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LavinError as exc:
        sys.exit(f"bench_gpu: error: {exc}")

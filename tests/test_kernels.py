"""The fused QK RMSNorm + 3D RoPE kernel against its PyTorch reference, and the dispatch.

On a machine without CUDA the Triton kernels run through Triton's interpreter on the CPU
(``TRITON_INTERPRET=1``, set here before the kernel module is imported); on a CUDA machine with
``TRITON_INTERPRET`` unset the same tests run the compiled kernels on the GPU
(``scripts/gpu_check.sh``). The interpreter is slow: shapes stay tiny.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.jdit.qk_norm_rope import (
    qk_norm_rope,
    qk_norm_rope_reference,
    resolve_backend,
    rotate_half_3d,
    triton_available,
)

DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1" else "cpu"

def _triton_skip_reason() -> str | None:
    if not triton_available():
        return "triton is not installed (pip install triton, Linux)"
    version = tuple(int(part) for part in importlib.metadata.version("triton").split(".")[:2])
    if DEVICE == "cpu" and version < (3, 7):
        return f"triton {version[0]}.{version[1]}'s interpreter cannot run a loop with a runtime bound; needs 3.7+"
    return None


TRITON_SKIP = _triton_skip_reason()
needs_triton = pytest.mark.skipif(TRITON_SKIP is not None, reason=TRITON_SKIP or "")

if TRITON_SKIP is None:
    if DEVICE == "cpu":
        # Read when the kernels are decorated (at import) and again while the interpreter runs them,
        # so it stays set for this process.
        os.environ["TRITON_INTERPRET"] = "1"
    import kernels.qk_norm_rope_triton as fused

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-12}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double()
    return ((actual.double() - expected).norm() / expected.norm()).item()


def rope_tables(seq_len: int, head_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random angles, laid out as the J-DiT's tables: per axis chunk, the same angles in both halves."""
    angles = torch.rand(seq_len, 3, head_dim // 6, generator=generator, dtype=torch.float64) * 20
    angles = torch.cat((angles, angles), dim=-1).flatten(1)  # (L, D)
    return angles.cos().float(), angles.sin().float()


def make_inputs(batch, seq_len, num_heads, num_kv_heads, head_dim, dtype, seed, requires_grad=True, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, seq_len, num_heads * head_dim, generator=g, dtype=torch.float64) * 3 + 0.5
    k = torch.randn(batch, seq_len, num_kv_heads * head_dim, generator=g, dtype=torch.float64) * 2 - 0.3
    q_weight = 1 + 0.3 * torch.randn(num_heads * head_dim, generator=g, dtype=torch.float64)
    k_weight = 1 + 0.3 * torch.randn(num_kv_heads * head_dim, generator=g, dtype=torch.float64)
    cos, sin = rope_tables(seq_len, head_dim, g)
    tensors = [t.to(device, dtype).requires_grad_(requires_grad) for t in (q, k, q_weight, k_weight)]
    return (*tensors, cos.to(device), sin.to(device))


def run_both(inputs, num_heads, num_kv_heads, grads_seed=1):
    """Forward and backward through the kernel and the reference; returns (fused, reference) lists."""
    results = []
    for impl in (fused.qk_norm_rope_triton, qk_norm_rope_reference):
        out = impl(*inputs, num_heads=num_heads, num_kv_heads=num_kv_heads)
        g = torch.Generator().manual_seed(grads_seed)
        grads = [torch.randn(o.shape, generator=g).to(o) for o in out]
        results.append([*out, *torch.autograd.grad(out, inputs[:4], grads)])
    return results


def assert_close(fused_results, reference_results, dtype):
    names = ("q", "k", "dq", "dk", "dq_weight", "dk_weight")
    for name, a, b in zip(names, fused_results, reference_results, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert relative_error(a, b) < TOLERANCE[dtype], f"{name}: {relative_error(a, b):.2e}"


# --- the reference ------------------------------------------------------------------------------


def test_reference_gradcheck_float64():
    q, k, qw, kw, cos, sin = make_inputs(2, 3, 2, 1, 12, torch.float64, seed=0, device="cpu")
    cos, sin = cos.double().requires_grad_(), sin.double().requires_grad_()

    def f(q, k, qw, kw, cos, sin):
        return qk_norm_rope_reference(q, k, qw, kw, cos, sin, num_heads=2, num_kv_heads=1)

    assert torch.autograd.gradcheck(f, (q, k, qw, kw, cos, sin))


def test_reference_rotation_is_per_axis_rotate_half():
    x = torch.arange(12.0)
    # chunks [0..3], [4..7], [8..11], each [a, b] -> [-b, a]
    expected = torch.tensor([-2.0, -3, 0, 1, -6, -7, 4, 5, -10, -11, 8, 9])
    assert torch.equal(rotate_half_3d(x), expected)


def test_reference_preserves_norm_per_head_with_unit_weights():
    """A rotation keeps each head's norm: with weights 1 it equals the RMS-normalised input's."""
    q, k, _, _, cos, sin = make_inputs(1, 5, 3, 1, 18, torch.float64, seed=3, requires_grad=False, device="cpu")
    ones_q, ones_k = torch.ones(q.shape[-1], dtype=q.dtype), torch.ones(k.shape[-1], dtype=k.dtype)
    out_q, _ = qk_norm_rope_reference(q, k, ones_q, ones_k, cos.double(), sin.double(), num_heads=3, num_kv_heads=1)
    normed = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(out_q.norm(dim=-1), normed.unflatten(-1, (3, 18)).norm(dim=-1))


# --- the fused kernel against the reference -------------------------------------------------------


@needs_triton
@pytest.mark.parametrize("head_dim", [72, 48])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_matches_reference(head_dim, dtype):
    inputs = make_inputs(2, 5, 4, 2, head_dim, dtype, seed=head_dim)
    assert_close(*run_both(inputs, 4, 2), dtype)


@needs_triton
@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(
    batch=st.integers(1, 2),
    seq_len=st.integers(1, 9),
    heads=st.sampled_from([(1, 1), (2, 2), (3, 1), (6, 2), (5, 5)]),
    head_dim=st.sampled_from([12, 48, 72]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_kernel_matches_reference_random_shapes(batch, seq_len, heads, head_dim, dtype, seed):
    inputs = make_inputs(batch, seq_len, *heads, head_dim, dtype, seed=seed)
    assert_close(*run_both(inputs, *heads, grads_seed=seed + 1), dtype)


@needs_triton
def test_kernel_at_the_3_4b_widths():
    """32 query and 8 key/value heads of 72: the tiles are padded (96 -> 128 pairs, 12 -> 16) and masked."""
    inputs = make_inputs(1, 3, 32, 8, 72, torch.float32, seed=7)
    assert_close(*run_both(inputs, 32, 8), torch.float32)


@needs_triton
def test_kernel_reads_strided_inputs_and_gradients():
    """q and k as column slices of one fused projection; the gradient arriving as a transpose."""
    num_heads, num_kv_heads, head_dim = 2, 1, 12
    q, k, qw, kw, cos, sin = make_inputs(2, 5, num_heads, num_kv_heads, head_dim, torch.float32, seed=11)
    qkv = torch.cat((q, k, torch.randn_like(k)), dim=-1).detach().requires_grad_()
    q_view, k_view = qkv[..., : q.shape[-1]], qkv[..., q.shape[-1] : q.shape[-1] + k.shape[-1]]
    results = []
    for impl in (fused.qk_norm_rope_triton, qk_norm_rope_reference):
        out_q, out_k = impl(q_view, k_view, qw, kw, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads)
        # What the attention backend hands back: (B, H, L, D) contiguous, seen as (B, L, H, D).
        g = torch.Generator().manual_seed(5)
        grad_q = torch.randn(2, num_heads, 5, head_dim, generator=g).to(DEVICE).transpose(1, 2)
        grad_k = torch.randn(2, num_kv_heads, 5, head_dim, generator=g).to(DEVICE).transpose(1, 2)
        grads = torch.autograd.grad((out_q, out_k), (qkv, qw, kw), (grad_q, grad_k))
        results.append([out_q, out_k, *grads])
    for a, b in zip(*results, strict=True):
        assert relative_error(a, b) < 1e-5


@needs_triton
def test_kernel_without_grad_and_mixed_precision_weights():
    """bf16 activations with float32 norm weights (autocast-style), under no_grad."""
    q, k, qw, kw, cos, sin = make_inputs(1, 4, 2, 2, 48, torch.bfloat16, seed=13, requires_grad=False)
    qw, kw = qw.float(), kw.float()
    with torch.no_grad():
        out = fused.qk_norm_rope_triton(q, k, qw, kw, cos, sin, num_heads=2, num_kv_heads=2)
    ref = qk_norm_rope_reference(q, k, qw, kw, cos, sin, num_heads=2, num_kv_heads=2)
    for a, b in zip(out, ref, strict=True):
        assert a.dtype == torch.bfloat16 and relative_error(a, b) < 1e-2


@needs_triton
def test_kernel_refuses_tables_that_need_gradients():
    q, k, qw, kw, cos, sin = make_inputs(1, 2, 1, 1, 12, torch.float32, seed=0)
    with pytest.raises(ValueError, match="constants"):
        fused.qk_norm_rope_triton(q, k, qw, kw, cos.requires_grad_(), sin, num_heads=1, num_kv_heads=1)


# --- dispatch -------------------------------------------------------------------------------------


def test_dispatch_torch_is_the_reference(monkeypatch):
    monkeypatch.setenv("LAVIN_KERNELS", "torch")
    inputs = make_inputs(1, 3, 2, 1, 12, torch.float32, seed=2, requires_grad=False, device="cpu")
    for a, b in zip(
        qk_norm_rope(*inputs, num_heads=2, num_kv_heads=1),
        qk_norm_rope_reference(*inputs, num_heads=2, num_kv_heads=1),
        strict=True,
    ):
        assert torch.equal(a, b)


@needs_triton
def test_dispatch_triton_agrees_with_torch():
    inputs = make_inputs(1, 3, 2, 1, 12, torch.bfloat16, seed=4, requires_grad=False)
    fused_out = qk_norm_rope(*inputs, num_heads=2, num_kv_heads=1, backend="triton")
    torch_out = qk_norm_rope(*inputs, num_heads=2, num_kv_heads=1, backend="torch")
    for a, b in zip(fused_out, torch_out, strict=True):
        assert relative_error(a, b) < 1e-2


def test_resolve_backend(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("LAVIN_KERNELS", raising=False)
    assert resolve_backend(None, cpu) == "torch"
    assert resolve_backend("auto", cuda) == ("triton" if triton_available() else "torch")
    assert resolve_backend("auto", cuda, tables_need_grad=True) == "torch"
    monkeypatch.setenv("LAVIN_KERNELS", "torch")
    assert resolve_backend(None, cuda) == "torch"
    monkeypatch.setenv("LAVIN_KERNELS", "cuda")
    with pytest.raises(ValueError, match=r"LAVIN_KERNELS='cuda'.*auto, triton, torch"):
        resolve_backend(None, cpu)
    with pytest.raises(ValueError, match=r"backend='fast'"):
        resolve_backend("fast", cpu)


@pytest.mark.parametrize(
    ("q_width", "k_width", "table_dim", "match"),
    [(24, 12, 10, "divisible by 6"), (36, 12, 12, "q has width 36"), (24, 18, 12, "k has width 18")],
)
def test_dispatch_rejects_bad_shapes(q_width, k_width, table_dim, match):
    q, k = torch.randn(1, 3, q_width), torch.randn(1, 3, k_width)
    cos = sin = torch.randn(3, table_dim)
    with pytest.raises(ValueError, match=match):
        qk_norm_rope(q, k, torch.ones(q_width), torch.ones(k_width), cos, sin, num_heads=2, num_kv_heads=1)


@needs_triton
def test_kernel_compiles_without_graph_breaks():
    """``torch.compile(fullgraph=True)`` sees the kernels as opaque custom ops, forward and backward."""
    inputs = make_inputs(1, 3, 2, 1, 12, torch.float32, seed=6)

    def loss(q, k, qw, kw, cos, sin):
        out_q, out_k = qk_norm_rope(2 * q, k, qw, kw, cos, sin, num_heads=2, num_kv_heads=1, backend="triton")
        return (out_q.sum(-1) * out_k.sum(-1)).sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    eager_grads = torch.autograd.grad(loss(*inputs), inputs[:4])
    compiled_grads = torch.autograd.grad(compiled(*inputs), inputs[:4])
    for a, b in zip(compiled_grads, eager_grads, strict=True):
        assert relative_error(a, b) < 1e-6


# --- benchmarks/bench_gpu.py (its timings need a GPU; here: its refusal and the parts that run anywhere) ----


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_bench_gpu_refuses_without_cuda():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    done = subprocess.run([sys.executable, str(script), "--kernel-only"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(script.parents[1])})
    err = done.stderr.strip()
    assert done.returncode == 1 and err.count("\n") == 0 and "needs a CUDA GPU" in err


def test_bench_context_shapes_and_weights():
    from benchmarks.bench_gpu import BenchOptions, build_model, context_shapes

    shapes = context_shapes(BenchOptions(), in_channels=16)
    assert shapes == {"z": (1, 16, 1, 64, 64), "cond": (1, 16, 9, 64, 64), "null": (1, 16, 2, 64, 64)}
    # 10 frames of 32 x 32 patches: the 10,240 tokens of the targets.
    assert (shapes["cond"][2] + shapes["z"][2]) * (64 // 2) ** 2 == 10240
    with pytest.raises(ValueError, match="multiple of 16"):
        context_shapes(BenchOptions(image_size=100), in_channels=16)
    model = build_model(BenchOptions(preset="lavin-tiny"), torch.device("cpu"), torch.float32)
    assert all(p.any() for p in model.parameters()) and not any(p.requires_grad for p in model.parameters())


def test_bench_model_sections_run_on_cpu():
    """The eager rows of the model sections, on the tiny preset (compile and CUDA graphs are GPU-only here)."""
    from benchmarks.bench_gpu import BenchOptions, bench_model, build_model, format_report

    options = BenchOptions(preset="lavin-tiny", image_size=32, pairs=1, steps=2, compile=False, cuda_graphs=False)
    rows = bench_model(options, build_model(options, torch.device("cpu"), torch.float32), torch.device("cpu"))
    assert [r["variant"] for r in rows["sampling"]] == ["eager, reference kernels"]
    assert rows["sampling"][0]["rel_error_vs_eager_reference"] == 0.0 and rows["forward"][0]["ms"] > 0
    report = {"device": "cpu", "torch": torch.__version__, "triton": None, "kernel_shapes": "-", "model_shapes": "-",
              "options": {"steps": 2, "guidance_scale": 1.5}, "kernel": [], **rows}
    text = format_report(report)
    assert "2 Euler steps with CFG 1.5" in text and "not measured" in text


@needs_triton
@pytest.mark.slow
@pytest.mark.skipif(DEVICE == "cuda", reason="on a GPU, scripts/gpu_check.sh runs this section for real")
def test_bench_kernel_section_runs_on_cpu(monkeypatch):
    """Every variant of the kernel section, one timed call each (the interpreter is slow)."""
    import benchmarks.bench_gpu as bench

    monkeypatch.setattr(bench, "time_kernel_ms", lambda fn, device: bench.time_call_ms(fn, device, reps=1, warmup=0))
    options = bench.BenchOptions(preset="lavin-tiny", image_size=32, pairs=1)
    rows = bench.bench_kernel(options, torch.device("cpu"), compile_reference=True)
    by_variant = {(r["variant"], r["pass"]): r for r in rows}
    assert len(by_variant) == 6
    for variant in ("reference (eager)", "fused (triton)"):
        for pass_name in ("forward", "backward"):
            row = by_variant[variant, pass_name]
            assert row["ms"] > 0 and row["rel_error_vs_fp32"] < 1e-2
    # torch.compile needs a C++ compiler on the CPU: measured, or reported as failed, never raised.
    compiled = by_variant["reference (torch.compile)", "backward"]
    assert compiled["ms"] is not None or compiled["error"]


@needs_triton
def test_jdit_with_the_fused_kernel_matches_the_reference_path(monkeypatch):
    """A one-block J-DiT, forward and backward, with LAVIN_KERNELS=triton against LAVIN_KERNELS=torch."""
    from benchmarks.bench_gpu import fill_zero_parameters
    from lavin_core.jdit import JDiT, get_preset

    torch.manual_seed(0)
    model = JDiT(get_preset("lavin-tiny", depth=1)).to(DEVICE)
    fill_zero_parameters(model)  # the official init zeroes adaLN and the output: nothing to compare
    z, cond = torch.randn(1, 16, 1, 4, 4, device=DEVICE), torch.randn(1, 16, 3, 4, 4, device=DEVICE)
    t = torch.rand(1, device=DEVICE)
    results = []
    for backend in ("triton", "torch"):
        monkeypatch.setenv("LAVIN_KERNELS", backend)
        model.zero_grad()
        out = model(z, t, cond)
        out.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append([out, grads])
    for a, b in zip(*results, strict=True):
        assert relative_error(a, b) < 1e-5


# --- the inference path (its speed is benchmarks/bench_gpu.py's business; here: errors, and CUDA graphs on a GPU) ----


def test_inference_path_argument_checks():
    from lavin_core.pipeline.compiled import CUDAGraphDenoiser, compile_blocks, prepare_for_inference
    from lavin_core.errors import LavinError

    with pytest.raises(ValueError, match="ModuleList `blocks`"):
        compile_blocks(torch.nn.Linear(2, 2))
    if not torch.cuda.is_available():
        with pytest.raises(LavinError, match="needs a CUDA GPU"):
            prepare_for_inference(torch.nn.Linear(2, 2))
        with pytest.raises(LavinError, match="needs a CUDA GPU"):
            CUDAGraphDenoiser(torch.nn.Linear(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_denoiser_replays_the_eager_model():
    """Two input shapes (conditional and null context), each captured once and replayed on new values."""
    from benchmarks.bench_gpu import fill_zero_parameters
    from lavin_core.pipeline.compiled import CUDAGraphDenoiser
    from lavin_core.jdit import JDiT, get_preset

    torch.manual_seed(0)
    model = JDiT(get_preset("lavin-tiny", depth=2)).cuda().eval().requires_grad_(False)
    fill_zero_parameters(model)
    fast = CUDAGraphDenoiser(model)
    for step in range(3):
        z = torch.randn(1, 16, 1, 8, 8, device="cuda")
        t = torch.rand(1, device="cuda")
        for frames in (3, 2):
            cond = torch.randn(1, 16, frames, 8, 8, device="cuda")
            with torch.no_grad():
                expected = model(z, t, cond)
            assert relative_error(fast(z, t, cond), expected) < 1e-5, (step, frames)
    assert len(fast.captured_shapes) == 2

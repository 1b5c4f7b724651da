"""Fused QK RMSNorm + head split + 3D RoPE in Triton: forward, backward, and the autograd glue.

Same function as ``lavin_core.jdit.qk_norm_rope.qk_norm_rope_reference`` (shapes in that module's
docstring), computed in float32 registers and rounded once on the way out.

How a row is laid out. One row of q is ``num_heads * D`` values; head ``h`` holds three RoPE
chunks (frame, row, column) of ``2 * HALF`` values each, ``HALF = D // 6``, and ``rotate_half``
pairs the first ``HALF`` values of a chunk with the last ``HALF``. So a row is ``3 * num_heads``
*pairs* of half-chunks, and each program loads it as two ``(pairs, HALF)`` tiles: the first
halves and the second halves. The rotation is then elementwise between the two tiles, nothing is
gathered, and every value is read from memory once. ``HALF`` is 12 at head_dim 72 and 8 at 48;
the tiles are padded to powers of two and masked.

Forward (one program per (batch, position) row, q and k of that row together):
    y = x * rstd * w,            rstd = 1 / sqrt(mean(x^2) + eps) over the whole width
    out_1 = y_1 cos_1 - y_2 sin_1,  out_2 = y_2 cos_2 + y_1 sin_2   (1, 2: the two half-chunks)
Backward (a fixed number of programs, each looping over rows and keeping its weight-gradient
partial sums in registers; the partials are summed over programs afterwards, as Liger-Kernel's
RMSNorm does):
    gy_1 = g_1 cos_1 + g_2 sin_2,   gy_2 = g_2 cos_2 - g_1 sin_1    (the transposed rotation)
    dw += gy * xhat,  xhat = x * rstd
    dx = rstd * (gy w - xhat * mean(gy w xhat))

The kernels are wrapped as ``torch.library`` custom ops (``lavin::qk_norm_rope_fwd`` / ``_bwd``)
so that ``torch.compile`` treats them as opaque and CUDA graphs capture them; ``QKNormRope`` (an
``autograd.Function``) ties forward and backward together.

On a CPU tensor the kernels run only under Triton's interpreter: ``TRITON_INTERPRET=1`` must be
set before this module is imported (Triton decides at decoration time) and stay set. Triton 3.7 or
newer is needed there (3.6's interpreter cannot take a runtime loop bound under NumPy 2); compiled
for a GPU, 3.6 works. The interpreter (3.9) rounds float32 -> bf16 by truncation where the GPU
rounds to nearest even, so interpreted bf16 results carry about twice the rounding error of
compiled ones (still well inside the 1e-2 bf16 tolerance).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.jit import JITFunction

from kernels.contract import check_qk_inputs


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _total(x):
    """Sum of a whole tile.

    Why not ``tl.sum``: it (like ``tl.zeros`` and ``tl.cdiv``) is a jit function of triton's standard
    library, decorated when triton is first imported; if that happened before ``TRITON_INTERPRET=1``
    was set (``torch._dynamo`` imports triton), the interpreter cannot call it. This module uses only
    builtins and its own jit functions, so the interpreter works whatever the import order.
    """
    return tl.reduce(x, None, _add)


@triton.jit
def _load_halves(ptr, head_stride, p, s, mask, HALF: tl.constexpr):
    """The two half-chunk tiles ``(P_BLOCK, S_BLOCK)`` of one row, in float32.

    Pair ``p`` is head ``p // 3``, RoPE chunk ``p % 3``; ``ptr`` points at the row's start.
    """
    offs = (p // 3) * head_stride + (p % 3) * (2 * HALF) + s
    first = tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)
    second = tl.load(ptr + offs + HALF, mask=mask, other=0.0).to(tl.float32)
    return first, second


@triton.jit
def _store_halves(ptr, head_stride, p, s, mask, first, second, HALF: tl.constexpr):
    offs = (p // 3) * head_stride + (p % 3) * (2 * HALF) + s
    tl.store(ptr + offs, first.to(ptr.dtype.element_ty), mask=mask)
    tl.store(ptr + offs + HALF, second.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _forward_row(x_ptr, out_ptr, w_ptr, cos_ptr, sin_ptr, eps,
                 PAIRS: tl.constexpr, HALF: tl.constexpr, P_BLOCK: tl.constexpr, S_BLOCK: tl.constexpr):
    p = tl.arange(0, P_BLOCK)[:, None]
    s = tl.arange(0, S_BLOCK)[None, :]
    mask = (p < PAIRS) & (s < HALF)
    head_dim = 6 * HALF
    x1, x2 = _load_halves(x_ptr, head_dim, p, s, mask, HALF)
    rstd = tl.rsqrt((_total(x1 * x1) + _total(x2 * x2)) / (PAIRS * 2 * HALF) + eps)
    w1, w2 = _load_halves(w_ptr, head_dim, p, s, mask, HALF)
    # The tables are (L, D), shared by all heads: head stride 0.
    c1, c2 = _load_halves(cos_ptr, 0, p, s, mask, HALF)
    s1, s2 = _load_halves(sin_ptr, 0, p, s, mask, HALF)
    y1 = x1 * rstd * w1
    y2 = x2 * rstd * w2
    _store_halves(out_ptr, head_dim, p, s, mask, y1 * c1 - y2 * s1, y2 * c2 + y1 * s2, HALF)


@triton.jit
def _forward_kernel(
    q_ptr, k_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, q_out_ptr, k_out_ptr,
    seq_len, q_stride_b, q_stride_l, k_stride_b, k_stride_l, eps,
    Q_PAIRS: tl.constexpr, K_PAIRS: tl.constexpr, HALF: tl.constexpr,
    Q_BLOCK: tl.constexpr, K_BLOCK: tl.constexpr, S_BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    b = row // seq_len
    pos = row % seq_len
    table = pos * (6 * HALF)
    _forward_row(q_ptr + b * q_stride_b + pos * q_stride_l, q_out_ptr + row * (Q_PAIRS * 2 * HALF),
                 qw_ptr, cos_ptr + table, sin_ptr + table, eps, Q_PAIRS, HALF, Q_BLOCK, S_BLOCK)
    _forward_row(k_ptr + b * k_stride_b + pos * k_stride_l, k_out_ptr + row * (K_PAIRS * 2 * HALF),
                 kw_ptr, cos_ptr + table, sin_ptr + table, eps, K_PAIRS, HALF, K_BLOCK, S_BLOCK)


@triton.jit
def _backward_row(x_ptr, g_ptr, g_head_stride, dx_ptr, w_ptr, cos_ptr, sin_ptr, eps, dw1, dw2,
                  PAIRS: tl.constexpr, HALF: tl.constexpr, P_BLOCK: tl.constexpr, S_BLOCK: tl.constexpr):
    """Writes one row of dx; returns the weight-gradient partial sums with this row added."""
    p = tl.arange(0, P_BLOCK)[:, None]
    s = tl.arange(0, S_BLOCK)[None, :]
    mask = (p < PAIRS) & (s < HALF)
    head_dim = 6 * HALF
    width = PAIRS * 2 * HALF
    # In this order each input dies as soon as it is used: fewer registers, more rows in flight.
    g1, g2 = _load_halves(g_ptr, g_head_stride, p, s, mask, HALF)
    c1, c2 = _load_halves(cos_ptr, 0, p, s, mask, HALF)
    s1, s2 = _load_halves(sin_ptr, 0, p, s, mask, HALF)
    gy1 = g1 * c1 + g2 * s2
    gy2 = g2 * c2 - g1 * s1
    x1, x2 = _load_halves(x_ptr, head_dim, p, s, mask, HALF)
    rstd = tl.rsqrt((_total(x1 * x1) + _total(x2 * x2)) / width + eps)
    xhat1 = x1 * rstd
    xhat2 = x2 * rstd
    dw1 += gy1 * xhat1
    dw2 += gy2 * xhat2
    w1, w2 = _load_halves(w_ptr, head_dim, p, s, mask, HALF)
    gxhat1 = gy1 * w1
    gxhat2 = gy2 * w2
    proj = (_total(gxhat1 * xhat1) + _total(gxhat2 * xhat2)) / width
    _store_halves(dx_ptr, head_dim, p, s, mask,
                  rstd * (gxhat1 - xhat1 * proj), rstd * (gxhat2 - xhat2 * proj), HALF)
    return dw1, dw2


@triton.jit
def _backward_kernel(
    q_ptr, k_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, gq_ptr, gk_ptr, dq_ptr, dk_ptr, dqw_ptr, dkw_ptr,
    n_rows, n_programs, seq_len, q_stride_b, q_stride_l, k_stride_b, k_stride_l,
    gq_stride_b, gq_stride_l, gq_stride_h, gk_stride_b, gk_stride_l, gk_stride_h, eps,
    Q_PAIRS: tl.constexpr, K_PAIRS: tl.constexpr, HALF: tl.constexpr,
    Q_BLOCK: tl.constexpr, K_BLOCK: tl.constexpr, S_BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    dqw1 = tl.full((Q_BLOCK, S_BLOCK), 0.0, tl.float32)
    dqw2 = tl.full((Q_BLOCK, S_BLOCK), 0.0, tl.float32)
    dkw1 = tl.full((K_BLOCK, S_BLOCK), 0.0, tl.float32)
    dkw2 = tl.full((K_BLOCK, S_BLOCK), 0.0, tl.float32)
    first_row = pid.to(tl.int64)  # int64 offsets: B * L * width may pass 2**31
    # Rows pid, pid + n_programs, ...; the loop bounds are plain arguments (the interpreter of
    # older Triton versions cannot take program_id or num_programs as a bound).
    for start in range(0, n_rows, n_programs):
        row = first_row + start
        if row < n_rows:
            b = row // seq_len
            pos = row % seq_len
            table = pos * (6 * HALF)
            dqw1, dqw2 = _backward_row(
                q_ptr + b * q_stride_b + pos * q_stride_l, gq_ptr + b * gq_stride_b + pos * gq_stride_l, gq_stride_h,
                dq_ptr + row * (Q_PAIRS * 2 * HALF), qw_ptr, cos_ptr + table, sin_ptr + table, eps, dqw1, dqw2,
                Q_PAIRS, HALF, Q_BLOCK, S_BLOCK)
            dkw1, dkw2 = _backward_row(
                k_ptr + b * k_stride_b + pos * k_stride_l, gk_ptr + b * gk_stride_b + pos * gk_stride_l, gk_stride_h,
                dk_ptr + row * (K_PAIRS * 2 * HALF), kw_ptr, cos_ptr + table, sin_ptr + table, eps, dkw1, dkw2,
                K_PAIRS, HALF, K_BLOCK, S_BLOCK)
    # One row of partial sums per program: (programs, width) float32, summed by the caller.
    qp = tl.arange(0, Q_BLOCK)[:, None]
    kp = tl.arange(0, K_BLOCK)[:, None]
    s = tl.arange(0, S_BLOCK)[None, :]
    _store_halves(dqw_ptr + pid * (Q_PAIRS * 2 * HALF), 6 * HALF, qp, s, (qp < Q_PAIRS) & (s < HALF),
                  dqw1, dqw2, HALF)
    _store_halves(dkw_ptr + pid * (K_PAIRS * 2 * HALF), 6 * HALF, kp, s, (kp < K_PAIRS) & (s < HALF),
                  dkw1, dkw2, HALF)


def _blocks(num_heads: int, num_kv_heads: int, head_dim: int) -> dict[str, int]:
    """The compile-time sizes: pairs per row, the half-chunk width, and their padded tiles."""
    half = head_dim // 6
    return dict(
        Q_PAIRS=3 * num_heads, K_PAIRS=3 * num_kv_heads, HALF=half,
        Q_BLOCK=triton.next_power_of_2(3 * num_heads), K_BLOCK=triton.next_power_of_2(3 * num_kv_heads),
        S_BLOCK=triton.next_power_of_2(half),
    )


# Decided when the kernels were decorated (see the module docstring).
_INTERPRETED = not isinstance(_forward_kernel, JITFunction)


def _autotuned(kernel, warps: tuple[int, ...]):
    """On a GPU the kernel times each ``num_warps`` at its first call per shape and keeps the fastest.

    The register pressure (the compiled backward holds about 250 registers a thread at 4 warps,
    from the padded 128 x 16 tiles of the 3.4B widths) decides occupancy, so this is measured, not
    guessed. The interpreter has nothing to time: it gets the plain kernel.
    """
    if _INTERPRETED:
        return kernel
    configs = [triton.Config({}, num_warps=w) for w in warps]
    return triton.autotune(configs=configs, key=["Q_PAIRS", "K_PAIRS", "HALF"])(kernel)


_forward_launch = _autotuned(_forward_kernel, (4, 8))
_backward_launch = _autotuned(_backward_kernel, (4, 8, 16))


@functools.cache
def _backward_programs(device: torch.device) -> int:
    """Programs of the persistent backward: two per SM on a GPU (what its registers let stay resident
    at once), a handful in the interpreter. Each writes one row of weight-gradient partial sums."""
    if device.type == "cuda":
        return 2 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _check_device(q: Tensor) -> None:
    if q.device.type != "cuda" and not _INTERPRETED:
        raise ValueError(
            f"the Triton qk_norm_rope kernel got a {q.device.type} tensor; it runs on CUDA, or on the CPU "
            "only with TRITON_INTERPRET=1 set before kernels.qk_norm_rope_triton is imported"
        )


def _on_device(x: Tensor):
    """Triton launches on the current CUDA device: make it ``x``'s (a no-op in the interpreter)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _last_dim_contiguous(x: Tensor) -> Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


@torch.library.custom_op("lavin::qk_norm_rope_fwd", mutates_args=())
def qk_norm_rope_forward(
    q: Tensor, k: Tensor, q_weight: Tensor, k_weight: Tensor, cos: Tensor, sin: Tensor,
    num_heads: int, num_kv_heads: int, eps: float,
) -> tuple[Tensor, Tensor]:
    """The fused forward: q ``(B, L, Hq*D)``, k ``(B, L, Hk*D)`` -> ``(B, L, Hq, D)``, ``(B, L, Hk, D)``."""
    _check_device(q)
    batch, seq_len, _ = q.shape
    head_dim = cos.shape[-1]
    q, k = _last_dim_contiguous(q), _last_dim_contiguous(k)
    cos, sin = cos.contiguous(), sin.contiguous()
    q_out = q.new_empty(batch, seq_len, num_heads, head_dim)
    k_out = k.new_empty(batch, seq_len, num_kv_heads, head_dim)
    if q_out.numel() == 0:
        return q_out, k_out
    blocks = _blocks(num_heads, num_kv_heads, head_dim)
    with _on_device(q):
        _forward_launch[(batch * seq_len,)](
            q, k, q_weight.contiguous(), k_weight.contiguous(), cos, sin, q_out, k_out,
            seq_len, q.stride(0), q.stride(1), k.stride(0), k.stride(1), eps,
            **blocks,
        )
    return q_out, k_out


@qk_norm_rope_forward.register_fake
def _(q, k, q_weight, k_weight, cos, sin, num_heads, num_kv_heads, eps):
    batch, seq_len, _ = q.shape
    head_dim = cos.shape[-1]
    return q.new_empty(batch, seq_len, num_heads, head_dim), k.new_empty(batch, seq_len, num_kv_heads, head_dim)


@torch.library.custom_op("lavin::qk_norm_rope_bwd", mutates_args=())
def qk_norm_rope_backward(
    grad_q: Tensor, grad_k: Tensor, q: Tensor, k: Tensor, q_weight: Tensor, k_weight: Tensor,
    cos: Tensor, sin: Tensor, eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of the fused forward: ``dq (B, L, Hq*D)``, ``dk``, ``dq_weight (Hq*D,)``, ``dk_weight``.

    ``grad_q`` / ``grad_k`` are ``(B, L, H, D)`` in any strides (the attention backend's transpose
    is read in place); only the last dim must be contiguous.
    """
    _check_device(q)
    batch, seq_len, num_heads, head_dim = grad_q.shape
    num_kv_heads = grad_k.shape[2]
    q, k = _last_dim_contiguous(q), _last_dim_contiguous(k)
    grad_q, grad_k = _last_dim_contiguous(grad_q), _last_dim_contiguous(grad_k)
    cos, sin = cos.contiguous(), sin.contiguous()
    dq = q.new_empty(batch, seq_len, q.shape[-1])
    dk = k.new_empty(batch, seq_len, k.shape[-1])
    rows = batch * seq_len
    programs = max(1, min(rows, _backward_programs(q.device)))
    partials = torch.empty if rows > 0 else torch.zeros  # every launched program writes its whole row
    dqw = partials(programs, q.shape[-1], device=q.device, dtype=torch.float32)
    dkw = partials(programs, k.shape[-1], device=q.device, dtype=torch.float32)
    if rows > 0:
        blocks = _blocks(num_heads, num_kv_heads, head_dim)
        with _on_device(q):
            _backward_launch[(programs,)](
                q, k, q_weight.contiguous(), k_weight.contiguous(), cos, sin, grad_q, grad_k, dq, dk, dqw, dkw,
                rows, programs, seq_len, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                grad_q.stride(0), grad_q.stride(1), grad_q.stride(2),
                grad_k.stride(0), grad_k.stride(1), grad_k.stride(2), eps,
                **blocks,
            )
    return dq, dk, dqw.sum(0).to(q_weight.dtype), dkw.sum(0).to(k_weight.dtype)


@qk_norm_rope_backward.register_fake
def _(grad_q, grad_k, q, k, q_weight, k_weight, cos, sin, eps):
    return (q.new_empty(q.shape), k.new_empty(k.shape), q_weight.new_empty(q_weight.shape),
            k_weight.new_empty(k_weight.shape))


class QKNormRope(torch.autograd.Function):
    """Differentiable in q, k and both RMSNorm weights; the RoPE tables are constants (no gradient)."""

    @staticmethod
    def forward(ctx, q, k, q_weight, k_weight, cos, sin, num_heads, num_kv_heads, eps):
        ctx.save_for_backward(q, k, q_weight, k_weight, cos, sin)
        ctx.eps = eps
        return qk_norm_rope_forward(q, k, q_weight, k_weight, cos, sin, num_heads, num_kv_heads, eps)

    @staticmethod
    def backward(ctx, grad_q, grad_k):
        q, k, q_weight, k_weight, cos, sin = ctx.saved_tensors
        dq, dk, dqw, dkw = qk_norm_rope_backward(grad_q, grad_k, q, k, q_weight, k_weight, cos, sin, ctx.eps)
        return dq, dk, dqw, dkw, None, None, None, None, None


def qk_norm_rope_triton(
    q: Tensor,
    k: Tensor,
    q_weight: Tensor,
    k_weight: Tensor,
    cos: Tensor,
    sin: Tensor,
    *,
    num_heads: int,
    num_kv_heads: int,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """The fused path, same signature and result as ``qk_norm_rope_reference``."""
    check_qk_inputs(q, k, q_weight, k_weight, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads)
    if cos.requires_grad or sin.requires_grad:
        raise ValueError(
            "the Triton qk_norm_rope kernel treats cos/sin as constants; detach them or use backend='torch'"
        )
    return QKNormRope.apply(q, k, q_weight, k_weight, cos, sin, num_heads, num_kv_heads, float(eps))

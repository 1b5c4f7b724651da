"""QK RMSNorm + head split + 3D rotary embedding: the per-block step between the q/k projections
and attention.

Contract (shared by the reference and the fused kernel):
    q: ``(B, L, num_heads * D)`` and k: ``(B, L, num_kv_heads * D)``, the projected q and k;
    q_weight ``(num_heads * D,)``, k_weight ``(num_kv_heads * D,)``: RMSNorm weights over the
    *whole* projected width (as the official LaVin-DiT does), eps 1e-6;
    cos, sin: ``(L, D)`` rotary tables (``lavin_core.jdit.rope``): the head dim is split in three
    equal chunks (frame, row, column) and each chunk is rotated half-wise (``rotate_half``).
returns q ``(B, L, num_heads, D)`` and k ``(B, L, num_kv_heads, D)``: the layout
(batch, sequence, heads, head_dim) that the attention backends want underneath.

``qk_norm_rope`` picks the implementation: ``backend="triton"`` (the fused kernel in
``kernels.qk_norm_rope_triton``), ``"torch"`` (the reference) or ``"auto"`` (the kernel on CUDA
tensors when Triton is installed, the reference everywhere else). Without the keyword the
environment variable ``LAVIN_KERNELS`` (``auto``, ``triton`` or ``torch``) decides; default ``auto``.
The two agree to bf16 tolerance (the kernel rounds once, from float32).
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from kernels.contract import check_qk_inputs

#: The values of ``backend=`` and of the ``LAVIN_KERNELS`` environment variable.
BACKENDS = ("auto", "triton", "torch")


def rotate_half_3d(x: Tensor) -> Tensor:
    """Per-axis ``rotate_half`` over the last dim split in three chunks: each chunk ``[a, b] -> [-b, a]``."""
    chunks = x.unflatten(-1, (3, 2, x.shape[-1] // 6))
    first, second = chunks.unbind(-2)
    return torch.stack((-second, first), dim=-2).flatten(-3)


def rms_norm(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
    """RMSNorm over the last dim, computed in float32 (float64 stays float64) and returned in ``x``'s dtype."""
    compute = torch.promote_types(x.dtype, torch.float32)
    xc = x.to(compute)
    out = xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.to(compute)
    return out.to(x.dtype)


def qk_norm_rope_reference(
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
    """Plain PyTorch: normalize, split heads, rotate. See the module docstring for shapes."""
    q = rms_norm(q, q_weight, eps).unflatten(-1, (num_heads, -1))
    k = rms_norm(k, k_weight, eps).unflatten(-1, (num_kv_heads, -1))
    cos, sin = cos[:, None, :].to(q.dtype), sin[:, None, :].to(q.dtype)  # (L, 1, D)
    return q * cos + rotate_half_3d(q) * sin, k * cos + rotate_half_3d(k) * sin


# Looked up once (without importing triton): a plain constant is also what torch.compile wants to see.
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """Whether the ``triton`` package is installed (it is not on macOS or Windows, nor in some CPU-only setups)."""
    return _TRITON_INSTALLED


def _backend_from_env() -> str:
    # Dynamo traces os.environ reads (and guards on the value), so no decorator is needed for
    # torch.compile; `torch.compiler.assume_constant_result` here would import torch._dynamo (and
    # Triton) with the model, 1-2 s of every start-up.
    return os.environ.get("LAVIN_KERNELS", "auto").strip().lower() or "auto"


def resolve_backend(backend: str | None, device: torch.device, *, tables_need_grad: bool = False) -> str:
    """``"triton"`` or ``"torch"``: what ``backend`` (or ``$LAVIN_KERNELS`` when None) asks for on ``device``.

    Auto picks the kernel on CUDA when Triton is installed, unless the RoPE tables need a gradient
    (the kernel treats them as constants).
    """
    source = "backend"
    if backend is None:
        backend, source = _backend_from_env(), "LAVIN_KERNELS"
    if backend not in BACKENDS:
        raise ValueError(f"{source}={backend!r} is not a kernel backend; use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() and not tables_need_grad else "torch"
    if backend == "triton" and not triton_available():
        raise ValueError(f"{source}='triton' but triton is not installed; pip install triton (Linux) or use 'torch'")
    return backend


def qk_norm_rope(
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
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Dispatch: the fused Triton kernel where it can run, the reference everywhere else.

    ``backend``: ``"auto"``, ``"triton"`` or ``"torch"``; None reads ``$LAVIN_KERNELS`` (default auto).
    """
    check_qk_inputs(q, k, q_weight, k_weight, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads)
    tables_need_grad = cos.requires_grad or sin.requires_grad
    if resolve_backend(backend, q.device, tables_need_grad=tables_need_grad) == "triton":
        from kernels.qk_norm_rope_triton import qk_norm_rope_triton

        return qk_norm_rope_triton(
            q, k, q_weight, k_weight, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads, eps=eps
        )
    return qk_norm_rope_reference(
        q, k, q_weight, k_weight, cos, sin, num_heads=num_heads, num_kv_heads=num_kv_heads, eps=eps
    )

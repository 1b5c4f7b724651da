"""Multi-head attention with grouped key/value heads, behind one function with three backends.

Layout: q ``(B, L, H, D)``, k and v ``(B, S, H_kv, D)`` with ``H_kv`` dividing ``H``; query head
``h`` reads key/value head ``h // (H / H_kv)`` (the grouping of flash-attn, xformers and SDPA's
``enable_gqa``). Returns ``(B, L, H, D)``. The scale is ``D ** -0.5``; no mask, no dropout.

Backends:
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (CPU and GPU; on the GPU it picks
  cuDNN / flash / memory-efficient kernels itself). The default.
- ``"xformers"``: ``xformers.ops.memory_efficient_attention`` on CUDA tensors when xformers is
  installed. CI has no GPU, so this path is only exercised on a GPU machine.
- ``"math"``: plain softmax(q k^T) v in float32, the reference the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lavin_core.errors import LavinError, UnknownNameError

BACKENDS = ("sdpa", "xformers", "math")

# SDPA learned grouped key/value heads in torch 2.5; older versions get the kv heads repeated.
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


def _check(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(
            f"attention wants q, k, v laid out (B, L, heads, head_dim), got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in batch (dim 0) and head_dim (dim 3)"
        )
    if q.shape[2] % k.shape[2]:
        raise ValueError(
            f"the {k.shape[2]} key/value heads (k dim 2) must divide the {q.shape[2]} query heads (q dim 2)"
        )


def _repeat_kv(x: Tensor, groups: int) -> Tensor:
    """``(B, S, H_kv, D) -> (B, S, H_kv * groups, D)``, each kv head repeated for its query group."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=2)


def _math(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    groups = q.shape[2] // k.shape[2]
    k, v = _repeat_kv(k, groups).float(), _repeat_kv(v, groups).float()
    scores = torch.einsum("blhd,bshd->bhls", q.float(), k) * q.shape[-1] ** -0.5
    return torch.einsum("bhls,bshd->blhd", scores.softmax(dim=-1), v).to(q.dtype)


def _sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    groups = q.shape[2] // k.shape[2]
    if not _SDPA_HAS_GQA:
        k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
    # Transposed views keep the physical (B, L, H, D) layout that cuDNN's kernel wants.
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        **({"enable_gqa": groups > 1} if _SDPA_HAS_GQA else {}),
    )
    return out.transpose(1, 2)


def _xformers(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    # Only checkable on a GPU machine with xformers installed; CI exercises the errors below.
    if not q.is_cuda:
        raise LavinError(
            f"the xformers attention backend needs CUDA tensors, got device {q.device}; "
            "use backend='sdpa' on this device"
        )
    try:
        import xformers.ops as xops
    except ImportError as err:
        raise LavinError(
            "the xformers attention backend needs xformers (pip install 'lavin-dit[gpu]'); "
            "or use backend='sdpa'"
        ) from err
    batch, seq_k, kv_heads, head_dim = k.shape
    groups = q.shape[2] // kv_heads
    if groups == 1:
        return xops.memory_efficient_attention(q, k, v)
    # xformers takes grouped heads as a 5-D (B, L, G, H_per_group, D) layout with k/v broadcast.
    shape = (batch, seq_k, kv_heads, groups, head_dim)
    out = xops.memory_efficient_attention(
        q.unflatten(2, (kv_heads, groups)),
        k.unsqueeze(3).expand(shape),
        v.unsqueeze(3).expand(shape),
    )
    return out.flatten(2, 3)


_IMPLEMENTATIONS = {"sdpa": _sdpa, "xformers": _xformers, "math": _math}


def attention(q: Tensor, k: Tensor, v: Tensor, *, backend: str = "sdpa") -> Tensor:
    """Attention of q ``(B, L, H, D)`` over k, v ``(B, S, H_kv, D)``; returns ``(B, L, H, D)``."""
    implementation = _IMPLEMENTATIONS.get(backend)
    if implementation is None:
        raise UnknownNameError("attention backend", backend, BACKENDS)
    _check(q, k, v)
    return implementation(q, k, v)

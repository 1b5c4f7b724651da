"""The contract of the fused QK RMSNorm + head split + 3D RoPE step, checked before either
implementation runs (the Triton kernel here, the PyTorch reference in ``lavin_core.jdit.qk_norm_rope``).

    q: ``(B, L, num_heads * D)`` and k: ``(B, L, num_kv_heads * D)``, the projected q and k;
    q_weight ``(num_heads * D,)``, k_weight ``(num_kv_heads * D,)``: RMSNorm weights over the
    whole projected width, eps 1e-6; cos, sin: ``(L, D)`` rotary tables, the head dim split in
    three equal chunks (frame, row, column), each rotated half-wise.
    returns q ``(B, L, num_heads, D)`` and k ``(B, L, num_kv_heads, D)``.
"""

from __future__ import annotations

from torch import Tensor


def check_qk_inputs(
    q: Tensor, k: Tensor, q_weight: Tensor, k_weight: Tensor, cos: Tensor, sin: Tensor,
    *, num_heads: int, num_kv_heads: int,
) -> None:
    """Raises a one-line ``ValueError`` when the inputs do not fit the contract above."""
    if q.dim() != 3 or k.dim() != 3 or q.shape[:2] != k.shape[:2]:
        raise ValueError(
            f"q and k must be (B, L, heads * head_dim) with the same B and L; got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if cos.dim() != 2 or cos.shape != sin.shape or cos.shape[0] != q.shape[1]:
        raise ValueError(
            f"cos and sin must both be (L, head_dim) with L = {q.shape[1]}; "
            f"got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    head_dim = cos.shape[1]
    if head_dim % 6:
        raise ValueError(f"head_dim {head_dim} must be divisible by 6 (three RoPE axes, each rotated half-wise)")
    for name, x, heads, weight in (("q", q, num_heads, q_weight), ("k", k, num_kv_heads, k_weight)):
        if x.shape[-1] != heads * head_dim:
            raise ValueError(
                f"{name} has width {x.shape[-1]}; expected {heads} heads x head_dim {head_dim} = {heads * head_dim}"
            )
        if weight.shape != (x.shape[-1],):
            raise ValueError(f"{name}_weight has shape {tuple(weight.shape)}, expected ({x.shape[-1]},)")

"""3D RoPE: table layout, a rotation (norms kept), relative positions per axis, caching."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.jdit.qk_norm_rope import qk_norm_rope
from lavin_core.jdit.rope import position_ids, rope_tables, rope_tables_for_positions

HEAD_DIM = 24  # 8 dims per axis


def test_position_ids_are_frame_major_then_row_then_column():
    expected = [(f, r, c) for f in range(2) for r in range(3) for c in range(4)]
    assert position_ids(2, 3, 4).tolist() == [list(p) for p in expected]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 40)] * 3), min_size=1, max_size=6), st.sampled_from([12, 24, 72]))
def test_tables_match_per_axis_formula(positions, head_dim):
    cos, sin = rope_tables_for_positions(torch.tensor(positions), head_dim, 10000.0)
    dims = head_dim // 3
    for row, pos in enumerate(positions):
        for axis in range(3):
            for i in range(dims):
                angle = pos[axis] * 10000.0 ** (-2 * (i % (dims // 2)) / dims)
                col = axis * dims + i
                assert math.isclose(cos[row, col].item(), math.cos(angle), abs_tol=1e-5)
                assert math.isclose(sin[row, col].item(), math.sin(angle), abs_tol=1e-5)


def rotate(x: torch.Tensor, positions: list[tuple[int, int, int]]) -> torch.Tensor:
    """Apply RoPE through the kernel contract with unit norm weights; x ``(1, L, H * D)`` -> ``(1, L, H, D)``."""
    cos, sin = rope_tables_for_positions(torch.tensor(positions), HEAD_DIM, 10000.0)
    heads = x.shape[-1] // HEAD_DIM
    ones = torch.ones(x.shape[-1])
    q, _ = qk_norm_rope(x, x, ones, ones, cos, sin, num_heads=heads, num_kv_heads=heads)
    return q


def unrotated(x: torch.Tensor) -> torch.Tensor:
    heads = x.shape[-1] // HEAD_DIM
    ones, length = torch.ones(x.shape[-1]), x.shape[1]
    identity = torch.ones(length, HEAD_DIM), torch.zeros(length, HEAD_DIM)
    return qk_norm_rope(x, x, ones, ones, *identity, num_heads=heads, num_kv_heads=heads)[0]


position = st.tuples(*[st.integers(0, 30)] * 3)


@settings(max_examples=25, deadline=None)
@given(st.lists(position, min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_rope_keeps_norms(positions, seed):
    x = torch.randn(1, len(positions), 2 * HEAD_DIM, generator=torch.Generator().manual_seed(seed))
    rotated, plain = rotate(x, positions), unrotated(x)
    torch.testing.assert_close(rotated.norm(dim=-1), plain.norm(dim=-1), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(rotated, plain) or all(p == (0, 0, 0) for p in positions)


@settings(max_examples=25, deadline=None)
@given(position, position, st.tuples(*[st.integers(-10, 10)] * 3), st.integers(0, 2**31 - 1))
def test_dot_product_depends_only_on_position_difference(p, r, shift, seed):
    shifted_p = tuple(a + s + 10 for a, s in zip(p, shift, strict=True))
    shifted_r = tuple(a + s + 10 for a, s in zip(r, shift, strict=True))
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 1, HEAD_DIM, generator=g), torch.randn(1, 1, HEAD_DIM, generator=g)
    dot = (rotate(q, [p]) * rotate(k, [r])).sum()
    dot_shifted = (rotate(q, [shifted_p]) * rotate(k, [shifted_r])).sum()
    assert math.isclose(dot.item(), dot_shifted.item(), rel_tol=1e-4, abs_tol=1e-4)


def test_each_axis_rotates_its_own_third():
    x = torch.randn(1, 1, HEAD_DIM, generator=torch.Generator().manual_seed(5))
    base = unrotated(x)[0, 0, 0]
    for axis in range(3):
        pos = [0, 0, 0]
        pos[axis] = 3
        moved = rotate(x, [tuple(pos)])[0, 0, 0]
        changed = (moved - base).abs().reshape(3, -1).amax(dim=-1) > 1e-6
        assert changed.tolist() == [a == axis for a in range(3)]


def test_tables_are_cached_per_shape_and_dtype():
    a = rope_tables(2, 3, 4, HEAD_DIM)
    assert rope_tables(2, 3, 4, HEAD_DIM)[0] is a[0]
    assert rope_tables(2, 3, 5, HEAD_DIM)[0].shape == (30, HEAD_DIM)
    half = rope_tables(2, 3, 4, HEAD_DIM, dtype=torch.bfloat16)
    assert half[0].dtype == torch.bfloat16
    torch.testing.assert_close(a[0], rope_tables_for_positions(position_ids(2, 3, 4), HEAD_DIM, 10000.0)[0])

"""Attention backends: agree with each other, with a per-head loop, and GQA equals MHA with repeated kv."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.jdit.attention import attention
from lavin_core.errors import LavinError, UnknownNameError


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


shapes = st.tuples(
    st.integers(1, 2),  # batch
    st.integers(1, 9),  # query length
    st.integers(1, 9),  # key length
    st.sampled_from([(1, 1), (2, 1), (4, 2), (6, 3), (4, 4)]),  # (heads, kv heads)
    st.sampled_from([6, 12, 24]),  # head_dim
    st.integers(0, 2**31 - 1),  # seed
)


def make_qkv(b, lq, lk, heads, kv_heads, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, lq, heads, d, generator=g)
    k = torch.randn(b, lk, kv_heads, d, generator=g)
    v = torch.randn(b, lk, kv_heads, d, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def loop_attention(q, k, v):
    """Independent reference: one head at a time, kv head h // group, in float64."""
    b, lq, heads, d = q.shape
    group = heads // k.shape[2]
    out = torch.empty(b, lq, heads, d, dtype=torch.float64)
    for h in range(heads):
        qh, kh, vh = q[:, :, h].double(), k[:, :, h // group].double(), v[:, :, h // group].double()
        weights = torch.softmax(qh @ kh.transpose(1, 2) / d**0.5, dim=-1)
        out[:, :, h] = weights @ vh
    return out


@settings(max_examples=25, deadline=None)
@given(shapes)
def test_backends_agree_with_loop(shape):
    b, lq, lk, (heads, kv_heads), d, seed = shape
    q, k, v = make_qkv(b, lq, lk, heads, kv_heads, d, seed)
    expected = loop_attention(q, k, v)
    for backend in ("math", "sdpa"):
        out = attention(q, k, v, backend=backend)
        assert out.shape == q.shape and out.dtype == q.dtype
        assert rel(out, expected) < 1e-5, backend


@settings(max_examples=15, deadline=None)
@given(shapes)
def test_gqa_equals_mha_with_repeated_kv(shape):
    b, lq, lk, (heads, kv_heads), d, seed = shape
    q, k, v = make_qkv(b, lq, lk, heads, kv_heads, d, seed)
    group = heads // kv_heads
    mha = attention(q, k.repeat_interleave(group, 2), v.repeat_interleave(group, 2), backend="sdpa")
    for backend in ("sdpa", "math"):
        assert rel(attention(q, k, v, backend=backend), mha) < 1e-5


def test_bf16_sdpa_close_to_float32_math():
    q, k, v = make_qkv(2, 16, 16, 4, 2, 24, seed=3)
    ref = attention(q, k, v, backend="math")
    out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), backend="sdpa")
    assert out.dtype == torch.bfloat16
    assert rel(out, ref) < 1e-2


def test_unknown_backend_names_the_choices():
    q, k, v = make_qkv(1, 2, 2, 2, 1, 6, seed=0)
    with pytest.raises(UnknownNameError, match="unknown attention backend 'flash'.*math, sdpa, xformers"):
        attention(q, k, v, backend="flash")


def test_xformers_refuses_cpu_tensors():
    q, k, v = make_qkv(1, 2, 2, 2, 1, 6, seed=0)
    with pytest.raises(LavinError, match="needs CUDA tensors.*backend='sdpa'"):
        attention(q, k, v, backend="xformers")


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "match"),
    [
        ((1, 4, 2, 6), (1, 4, 2), r"laid out \(B, L, heads, head_dim\)"),
        ((1, 4, 3, 6), (1, 4, 2, 6), "2 key/value heads .* must divide the 3 query heads"),
        ((1, 4, 2, 6), (1, 4, 1, 12), "must agree in batch .* and head_dim"),
        ((2, 4, 2, 6), (1, 4, 1, 6), "must agree in batch"),
    ],
)
def test_bad_shapes_are_named(q_shape, k_shape, match):
    q, k = torch.randn(q_shape), torch.randn(k_shape)
    with pytest.raises(ValueError, match=match):
        attention(q, k, k.clone())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers runs on CUDA only: checked on a GPU machine")
def test_xformers_matches_math_on_gpu():
    pytest.importorskip("xformers.ops")
    q, k, v = (x.cuda() for x in make_qkv(2, 33, 33, 8, 2, 72, seed=1))
    assert rel(attention(q, k, v, backend="xformers"), attention(q, k, v, backend="math")) < 1e-5

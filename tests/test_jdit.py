"""JDiT: shapes, errors, conventions, backends, autocast, checkpointing, save/load, compile, presets."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.errors import UnknownNameError
from lavin_core.jdit import PRESETS, JDiT, JDiTConfig, get_preset

SMALL = JDiTConfig(hidden_size=48, depth=2, num_heads=2, num_kv_heads=1, in_channels=4)
TSV = Path(__file__).parent / "data" / "lavin_dit_3.4b_state_dict.tsv"


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def random_jdit(config: JDiTConfig = SMALL, seed: int = 0) -> JDiT:
    """A JDiT with every parameter random (the official init zeroes the output and the adaLN)."""
    model = JDiT(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            scale = p.shape[-1] ** -0.5 if p.ndim == 2 else 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def inputs(config=SMALL, batch=2, frames_c=3, frames_x=1, h=4, w=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = config.in_channels
    z = torch.randn(batch, c, frames_x, h, w, generator=g)
    t = torch.rand(batch, generator=g)
    cond = torch.randn(batch, c, frames_c, h, w, generator=g)
    return z, t, cond


@settings(max_examples=12, deadline=None)
@given(
    batch=st.integers(1, 2),
    frames_c=st.integers(1, 4),
    frames_x=st.integers(1, 3),
    h=st.sampled_from([2, 4, 6]),
    w=st.sampled_from([2, 4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_output_shape_for_any_frames_and_size(batch, frames_c, frames_x, h, w, seed):
    model = random_jdit()
    z, t, cond = inputs(batch=batch, frames_c=frames_c, frames_x=frames_x, h=h, w=w, seed=seed)
    with torch.no_grad():
        v = model(z, t, cond)
    assert v.shape == z.shape and v.dtype == z.dtype
    assert torch.isfinite(v).all() and v.abs().sum() > 0


def test_fresh_model_predicts_zero_velocity():
    z, t, cond = inputs()
    with torch.no_grad():
        assert torch.equal(JDiT(SMALL)(z, t, cond), torch.zeros_like(z))


def test_output_depends_on_cond_and_time_and_batches_independently():
    model = random_jdit()
    z, t, cond = inputs(batch=2)
    with torch.no_grad():
        v = model(z, t, cond)
        assert rel(model(z, t, cond + 0.5 * torch.randn_like(cond)), v) > 1e-3
        assert rel(model(z, t.flip(0) * 0.5, cond), v) > 1e-3
        single = torch.cat([model(z[i : i + 1], t[i : i + 1], cond[i : i + 1]) for i in range(2)])
    assert rel(v, single) < 1e-5


def test_scalar_time_is_broadcast():
    model = random_jdit()
    z, _, cond = inputs(batch=2)
    with torch.no_grad():
        assert torch.equal(model(z, torch.tensor(0.3), cond), model(z, torch.full((2,), 0.3), cond))


def test_official_time_convention():
    model = random_jdit()
    official = random_jdit(attrs.evolve(SMALL, time_convention="official"))
    z, t, cond = inputs()
    with torch.no_grad():
        assert rel(official(z, t, cond), -model(z, 1 - t, cond)) < 1e-6


def test_math_and_sdpa_backends_agree_in_the_model():
    z, t, cond = inputs()
    sdpa = random_jdit()
    math = random_jdit(attrs.evolve(SMALL, attention_backend="math"))
    with torch.no_grad():
        assert rel(math(z, t, cond), sdpa(z, t, cond)) < 1e-5


def test_bf16_autocast_close_to_float32():
    model = random_jdit()
    z, t, cond = inputs()
    with torch.no_grad():
        ref = model(z, t, cond)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(z, t, cond)
    assert out.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(z, t, cond).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # 1e-2 is the per-op bf16 tolerance; a whole network of bf16 matmuls measures 0.6-1.0e-2 here.
    assert rel(out, ref) < 2e-2


def test_gradient_checkpointing_gives_same_values_and_grads():
    z, t, cond = inputs()
    grads = []
    for flag in (False, True):
        model = random_jdit(attrs.evolve(SMALL, gradient_checkpointing=flag)).train()
        loss = model(z, t, cond).square().mean()
        loss.backward()
        grads.append((loss.detach(), [p.grad for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = grads
    assert torch.equal(loss_a, loss_b)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_only_the_unread_last_cond_stream_gets_no_gradient():
    model = random_jdit().train()
    model(*inputs()).square().mean().backward()
    no_grad = {name for name, p in model.named_parameters() if p.grad is None}
    last = f"blocks.{SMALL.depth - 1}"
    assert no_grad == {
        *(f"{last}.joint_attn.cond_{name}.weight" for name in ("q", "qnorm", "proj")),
        *(f"{last}.cond_mlp.{proj}_proj.weight" for proj in ("gate", "up", "down")),
    }
    assert all(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if name not in no_grad)


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (dict(z=(2, 4, 1, 4, 6), cond=(2, 3, 2, 4, 6)), r"cond has 3 channels \(dim 1\), the model takes 4"),
        (dict(z=(2, 4, 1, 5, 6), cond=(2, 4, 2, 5, 6)), r"z_t latent height \(dim 3\) is 5.*use 4 or 6"),
        (dict(z=(2, 4, 1, 4, 6), cond=(2, 4, 2, 4, 8)), r"cond width \(dim 4\) is 8 but z_t's is 6"),
        (dict(z=(2, 4, 1, 4, 6), cond=(1, 4, 2, 4, 6)), r"cond batch \(dim 0\) is 1 but z_t's is 2"),
        (dict(z=(2, 4, 4, 6), cond=(2, 4, 2, 4, 6)), r"z_t must be \(B, C, T, h, w\)"),
        (dict(z=(2, 4, 1, 4, 6), cond=(2, 4, 2, 4, 6), t=(3,)), r"t must be a scalar or \(B,\) = \(2,\)"),
    ],
)
def test_bad_shapes_are_named(shapes, match):
    model = JDiT(SMALL)
    z, cond = torch.randn(shapes["z"]), torch.randn(shapes["cond"])
    t = torch.rand(shapes.get("t", (shapes["z"][0],)))
    with pytest.raises(ValueError, match=match):
        model(z, t, cond)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (dict(hidden_size=64, num_heads=2), "head_dim = hidden_size / num_heads = 32 must be a multiple of 6"),
        (dict(hidden_size=48, num_heads=5), "not divisible by num_heads 5"),
        (dict(num_heads=2, num_kv_heads=3), "num_kv_heads 3 must divide num_heads 2"),
        (dict(attention_backend="flash"), "attention_backend"),
        (dict(time_convention="sit"), "time_convention"),
    ],
)
def test_bad_config_is_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        attrs.evolve(SMALL, **fields)


def test_unknown_preset_is_named():
    with pytest.raises(UnknownNameError, match="did you mean 'lavin-tiny'"):
        get_preset("lavin-tiyn")
    assert get_preset("lavin-tiny", depth=2).depth == 2


def test_official_preset_has_exact_parameter_count_and_checkpoint_layout():
    with torch.device("meta"):
        model = JDiT(PRESETS["lavin-3.4b"])
    assert sum(p.numel() for p in model.parameters()) == 3_398_976_064
    official = {}
    for line in TSV.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            official[name] = tuple(ast.literal_eval(shape))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official


@pytest.mark.parametrize("where", ["local", "memory"])
def test_save_load_round_trip_is_exact(where, tmp_path):
    url = str(tmp_path / "jdit") if where == "local" else f"memory://jdit-{uuid.uuid4().hex}"
    model = random_jdit(attrs.evolve(SMALL, time_convention="official"), seed=7)
    model.save_pretrained(url)
    loaded = JDiT.from_pretrained(url).eval()
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    z, t, cond = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(z, t, cond), model(z, t, cond))


@pytest.mark.slow
def test_tiny_preset_compiles_fullgraph_and_matches_eager():
    torch._dynamo.reset()
    model = random_jdit(PRESETS["lavin-tiny"])
    z, t, cond = inputs(PRESETS["lavin-tiny"], batch=1, frames_c=3, frames_x=1, h=4, w=4)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert rel(compiled(z, t, cond), model(z, t, cond)) < 1e-5


def test_training_works_after_a_first_forward_under_inference_mode():
    # The RoPE tables are cached; one made under inference_mode must not poison training.
    from lavin_core.jdit import JDiT, get_preset

    model = JDiT(get_preset("lavin-tiny", depth=1))
    z, cond, t = torch.randn(1, 16, 1, 4, 6), torch.randn(1, 16, 3, 4, 6), torch.rand(1)
    with torch.inference_mode():
        model(z, t, cond)
    model(z, t, cond).square().mean().backward()
    assert all(p.grad is not None for p in model.x_embedder.parameters())

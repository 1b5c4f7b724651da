"""Block expansion (lavin_core.jdit.grow, scripts/grow_jdit.py): a deeper J-DiT that computes what
the trained one does, and whose new blocks train."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.jdit import JDiT, get_preset
from lavin_core.jdit.grow import block_sources, grow_depth
from tests.script_module import load_script

grow_jdit = load_script("grow_jdit")


def trained_like(depth: int, seed: int) -> JDiT:
    """A small J-DiT with every weight drawn at random (a fresh one has zero gates and output layer,
    which would make any two networks agree)."""
    torch.manual_seed(seed)
    model = JDiT(get_preset("lavin-tiny", hidden_size=48, depth=depth, num_heads=1, num_kv_heads=1))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.2)
    return model


def velocity(model: JDiT, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    cond = torch.randn(2, 16, 3, 4, 4, generator=generator)
    z_t = torch.randn(2, 16, 1, 4, 4, generator=generator)
    return model(z_t, torch.rand(2, generator=generator), cond)


@settings(max_examples=10, deadline=None)
@given(depth=st.integers(1, 3), extra=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_grown_network_computes_what_the_trained_one_does(depth: int, extra: int, seed: int) -> None:
    old = trained_like(depth, seed)
    state, config = grow_depth(old.state_dict(), old.config, depth + extra)
    new = JDiT(config)
    new.load_state_dict(state)
    assert config.depth == depth + extra and len(new.blocks) == depth + extra
    with torch.no_grad():
        torch.testing.assert_close(velocity(new, seed), velocity(old, seed), rtol=0, atol=1e-6)


@given(depth=st.integers(1, 8), extra=st.integers(0, 16))
def test_block_sources_keep_every_trained_block_once_and_in_order(depth: int, extra: int) -> None:
    layout = block_sources(depth, depth + extra)
    assert len(layout) == depth + extra
    assert [source for source, new in layout if not new] == list(range(depth))
    assert sum(new for _, new in layout) == extra
    for position, (source, new) in enumerate(layout):  # a copy follows the block it copies
        if new:
            assert layout[position - 1][0] == source
    copies = [sum(1 for s, new in layout if new and s == i) for i in range(depth)]
    assert max(copies) - min(copies) <= 1  # spread evenly


def test_new_blocks_start_gated_off_and_learn() -> None:
    old = trained_like(2, 0)
    state, config = grow_depth(old.state_dict(), old.config, 4)
    new = JDiT(config)
    new.load_state_dict(state)
    for position in (1, 3):
        gate = new.blocks[position].x_modulation[-1]
        assert not gate.weight.any() and not gate.bias.any()
    assert torch.equal(new.blocks[1].x_mlp.up_proj.weight, old.blocks[0].x_mlp.up_proj.weight)
    velocity(new, 1).square().mean().backward()
    assert new.blocks[1].x_modulation[-1].weight.grad.abs().sum() > 0


def test_grow_refuses_a_shallower_depth() -> None:
    old = trained_like(3, 0)
    with pytest.raises(ValueError, match="depth 3 to depth 2"):
        grow_depth(old.state_dict(), old.config, 2)


def test_script_writes_a_loadable_grown_folder_and_never_overwrites(tmp_path) -> None:
    source = tmp_path / "old"
    old = trained_like(2, 3)
    old.save_pretrained(str(source))
    out = tmp_path / "grown"
    grow_jdit.main([str(source), "--depth", "3", "--out", str(out)])
    grown = JDiT.from_pretrained(str(out))
    assert grown.config.depth == 3
    with torch.no_grad():
        torch.testing.assert_close(velocity(grown, 5), velocity(old, 5), rtol=0, atol=1e-6)
    with pytest.raises(SystemExit, match="already exists"):
        grow_jdit.main([str(source), "--depth", "4", "--out", str(out)])
    assert JDiT.from_pretrained(str(out)).config.depth == 3

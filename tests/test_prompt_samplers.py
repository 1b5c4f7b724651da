"""Prompt samplers by registry name: random (with and without replacement), fixed, nearest."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from lavin_core.context import ExamplePair
from lavin_plugins.samplers import FixedPromptSampler, NearestPromptSampler, RandomPromptSampler
from tests.standin import PoolEncoder

SEEDS = st.integers(0, 2**31 - 1)


def random_pool(seed: int, count: int = 10, size: int = 16) -> list[ExamplePair]:
    g = torch.Generator().manual_seed(seed)
    return [
        ExamplePair(input=torch.rand(3, 1, size, size, generator=g) * 2 - 1, target=torch.rand(3, 1, size, size, generator=g) * 2 - 1)
        for _ in range(count)
    ]


def test_registered_by_name():
    assert isinstance(registry.get_prompt_sampler("random"), RandomPromptSampler)
    assert isinstance(registry.get_prompt_sampler("fixed", indices=[1]), FixedPromptSampler)
    assert isinstance(registry.get_prompt_sampler("nearest"), NearestPromptSampler)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, num_pairs=st.integers(0, 10))
def test_random_without_replacement_is_distinct_and_seeded(seed, num_pairs):
    pool = random_pool(seed)
    sampler = registry.get_prompt_sampler("random")
    chosen = sampler.select(pool, pool[0].input, num_pairs, generator=torch.Generator().manual_seed(seed))
    again = sampler.select(pool, pool[0].input, num_pairs, generator=torch.Generator().manual_seed(seed))
    assert chosen == again and len(set(chosen)) == num_pairs and all(0 <= i < len(pool) for i in chosen)


def test_random_with_replacement_can_exceed_the_pool():
    pool = random_pool(1, count=3)
    chosen = registry.get_prompt_sampler("random", replacement=True).select(
        pool, pool[0].input, 20, generator=torch.Generator().manual_seed(0)
    )
    assert len(chosen) == 20 and set(chosen) <= {0, 1, 2} and len(set(chosen)) < 20
    with pytest.raises(ValueError, match="at most 3"):
        registry.get_prompt_sampler("random").select(pool, pool[0].input, 4)


def test_fixed_gives_the_same_pairs_every_time():
    pool = random_pool(2)
    assert registry.get_prompt_sampler("fixed").select(pool, pool[0].input, 3) == [0, 1, 2]
    fixed = registry.get_prompt_sampler("fixed", indices=[7, 2, 5])
    assert fixed.select(pool, pool[3].input, 2) == [7, 2] == fixed.select(pool, pool[4].input, 2)
    with pytest.raises(ValueError, match="fixed list has 3"):
        fixed.select(pool, pool[0].input, 4)
    with pytest.raises(ValueError, match="out of range"):
        registry.get_prompt_sampler("fixed", indices=[12]).select(pool, pool[0].input, 1)


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, target=st.integers(0, 9))
def test_nearest_finds_a_near_copy_of_the_query_first(seed, target):
    pool = random_pool(seed)
    g = torch.Generator().manual_seed(seed + 1)
    query = (pool[target].input + 0.01 * torch.randn(pool[target].input.shape, generator=g)).clamp(-1, 1)
    for sampler in (registry.get_prompt_sampler("nearest"), registry.get_prompt_sampler("nearest", encoder=PoolEncoder())):
        chosen = sampler.select(pool, query, 3)
        assert chosen[0] == target and len(set(chosen)) == 3


def test_nearest_orders_by_distance_in_the_pool_space():
    # inputs that differ only by brightness: distance grows with the brightness gap
    pool = [ExamplePair(input=torch.full((3, 1, 16, 16), v), target=torch.zeros(3, 1, 16, 16)) for v in (0.9, -0.5, 0.1, 0.5)]
    assert registry.get_prompt_sampler("nearest").select(pool, torch.full((3, 1, 16, 16), 0.0), 4) == [2, 1, 3, 0]
    with pytest.raises(TypeError, match="Encoder"):
        NearestPromptSampler(encoder="vae")


def test_nearest_compares_clips_of_other_lengths_by_their_mean_frames():
    """A 9-frame query against 5-frame example clips (the long-clip case): the example whose clip
    shows the query's content comes first, with and without an encoder."""
    torch.manual_seed(0)
    def clip(scene, frames):  # a still scene with a little noise per frame
        return (scene + 0.05 * torch.randn(3, frames, 32, 32)).clamp(-1, 1)

    scenes = [torch.rand(3, 1, 32, 32) * 2 - 1 for _ in range(4)]
    query = clip(scenes[0], 9)
    near = ExamplePair(input=clip(scenes[0], 5), target=torch.zeros(3, 5, 32, 32))
    far = [ExamplePair(input=clip(scene, 5), target=torch.zeros(3, 5, 32, 32)) for scene in scenes[1:]]
    for sampler in (registry.get_prompt_sampler("nearest"), registry.get_prompt_sampler("nearest", encoder=PoolEncoder())):
        assert sampler.select([*far[:2], near, far[2]], query, 2)[0] == 2

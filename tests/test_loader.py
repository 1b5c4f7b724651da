"""The training data loader: deterministic, shardable, mixing tasks, from caches or on the fly."""

from __future__ import annotations

import collections

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from lavin_core.data.cache import StaleCacheError, build_cache
from lavin_core.errors import LavinError
from lavin_core.data.loader import ContextLoader
from tests.standin import PoolEncoder

SIZE = 32
SEEDS = st.integers(0, 2**31 - 1)


def small_tasks() -> dict:
    return {registry.get_task("depth", size=SIZE): 1.0, registry.get_task("pose", size=SIZE): 1.0}


def assert_batches_equal(a, b) -> None:
    assert (a.task, a.num_pairs, a.ids, a.indices, a.latent) == (b.task, b.num_pairs, b.ids, b.indices, b.latent)
    assert torch.equal(a.cond(), b.cond()) and torch.equal(a.target, b.target)


@settings(max_examples=3, deadline=None)
@given(seed=SEEDS, step=st.integers(0, 10_000))
def test_batches_are_deterministic_and_well_formed(seed, step):
    loader = ContextLoader(small_tasks(), batch_size=2, min_pairs=1, max_pairs=3, seed=seed)
    batch = loader.batch(step)
    assert_batches_equal(batch, ContextLoader(small_tasks(), batch_size=2, max_pairs=3, seed=seed).batch(step))
    assert batch.task in ("depth", "pose") and 1 <= batch.num_pairs <= 3 and not batch.latent
    assert batch.query.shape == batch.target.shape == (2, 3, 1, SIZE, SIZE)
    assert batch.cond().shape == (2, 3, 2 * batch.num_pairs + 1, SIZE, SIZE)
    assert len(batch.ids[0]) == batch.num_pairs + 1 and len(set(batch.ids[0])) == batch.num_pairs + 1
    contexts = batch.contexts()
    assert len(contexts) == 2 and contexts[1].num_pairs == batch.num_pairs
    assert torch.equal(contexts[1].query, batch.query[1])


def test_ranks_split_the_global_batch_exactly():
    whole = ContextLoader(small_tasks(), batch_size=4, max_pairs=2, seed=3)
    shards = [ContextLoader(small_tasks(), batch_size=4, max_pairs=2, seed=3, rank=r, world_size=2) for r in range(2)]
    for step in (0, 5):
        full, parts = whole.batch(step), [s.batch(step) for s in shards]
        assert sorted(parts[0].indices + parts[1].indices) == list(full.indices)
        for part in parts:
            assert part.task == full.task and part.num_pairs == full.num_pairs
            for row, index in enumerate(part.indices):
                assert torch.equal(part.target[row], full.target[full.indices.index(index)])
    with pytest.raises(ValueError, match="multiple of world_size"):
        ContextLoader(small_tasks(), batch_size=3, world_size=2, rank=0)


def test_tasks_mix_by_weight_and_pairs_span_one_to_eight():
    loader = ContextLoader({"depth": 3.0, "pose": 1.0}, seed=0)
    plans = [loader.plan(step) for step in range(800)]
    counts = collections.Counter(position for position, _ in plans)
    assert 0.68 < counts[0] / 800 < 0.82
    assert {pairs for _, pairs in plans} == set(range(1, 9))


def test_iteration_resumes_and_splits_across_workers():
    loader = ContextLoader(small_tasks(), batch_size=1, max_pairs=2, seed=7, start=3, steps=4)
    steps = [batch.step for batch in loader]
    assert steps == [3, 4, 5, 6] and len(loader) == 4
    workers = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2)
    for a, b in zip(workers, ContextLoader(small_tasks(), batch_size=1, max_pairs=2, seed=7, start=3, steps=4)):
        assert_batches_equal(a, b)


def test_cached_latents_and_pixels_mix(tmp_path):
    encoder = PoolEncoder()
    cache = build_cache(registry.get_task("normals", size=SIZE), encoder, str(tmp_path / "n.zarr"), count=6)
    loader = ContextLoader({cache: 1.0, registry.get_task("edges", size=SIZE): 1.0}, batch_size=2, max_pairs=3, seed=2)
    seen = {}
    for step in range(12):
        batch = loader.batch(step)
        seen[batch.task] = batch
    cached, pixels = seen["normals"], seen["edges"]
    assert cached.latent and cached.query.shape == (2, encoder.latent_channels, 1, SIZE // 8, SIZE // 8)
    assert not pixels.latent and pixels.query.shape == (2, 3, 1, SIZE, SIZE)
    # the latents are the cache's, untouched
    query_id = cached.ids[0][-1]
    assert torch.equal(cached.query[0], next(p.input for p in cache if p.id == query_id))
    assert query_id not in cached.ids[0][:-1]


def test_encoder_makes_every_batch_latent_and_refuses_stale_caches(tmp_path):
    encoder = PoolEncoder()
    loader = ContextLoader([registry.get_task("depth", size=SIZE)], batch_size=1, max_pairs=2, encoder=encoder)
    batch = loader.batch(0)
    pixels = ContextLoader([registry.get_task("depth", size=SIZE)], batch_size=1, max_pairs=2).batch(0)
    assert batch.latent and torch.equal(batch.target, encoder.encode(pixels.target))
    cache = build_cache(registry.get_task("depth", size=SIZE), PoolEncoder(seed=5), str(tmp_path / "c.zarr"), count=4)
    with pytest.raises(StaleCacheError):
        ContextLoader([cache], encoder=encoder)


def test_pool_mode_uses_the_prompt_sampler():
    task = registry.get_task("depth", size=SIZE)
    loader = ContextLoader([task], batch_size=2, min_pairs=2, max_pairs=2, pool_size=6, prompt_sampler="nearest", seed=1)
    batch = loader.batch(4)
    pool = list(task.examples(6, seed=loader.sources[0].seed))
    by_id = {e.id: e for e in pool}
    for row in range(2):
        query_id, pair_ids = batch.ids[row][-1], batch.ids[row][:-1]
        others = [e for e in pool if e.id != query_id]
        query = by_id[query_id].pair.input
        chosen = registry.get_prompt_sampler("nearest").select([e.pair for e in others], query, 2)
        assert list(pair_ids) == [others[i].id for i in chosen]
    with pytest.raises(ValueError, match="pool_size 3 must be at least"):
        ContextLoader([task], pool_size=3)


def test_example_plugin_task_runs_through_the_loader():
    if "invert" not in registry.list_tasks():
        pytest.skip("the example plugin (examples/lavin-plugin-example) is not installed")
    loader = ContextLoader({"invert": 1.0, "depth": 1.0}, batch_size=2, max_pairs=2, prompt_sampler="stride", pool_size=5)
    tasks = {loader.batch(step).task for step in range(8)}
    assert "invert" in tasks
    batch = next(loader.batch(s) for s in range(8) if loader.batch(s).task == "invert")
    assert batch.query.shape[1] == 3 and batch.num_pairs in (1, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_pairs"):
        ContextLoader(["depth"], min_pairs=0)
    with pytest.raises(ValueError, match="given twice"):
        ContextLoader(["depth", registry.get_task("depth")])
    with pytest.raises(TypeError, match="task name, a Task or a latent cache"):
        ContextLoader([42])
    with pytest.raises(LavinError, match="unknown task"):
        ContextLoader(["no_such_task"])

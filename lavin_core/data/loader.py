"""The training data loader: batches of task contexts with 1 to 8 example pairs, mixing tasks.

    loader = ContextLoader({"depth": 2.0, "pose": 1.0, open_cache("s3://b/normals.zarr"): 1.0},
                           batch_size=16, min_pairs=1, max_pairs=8, seed=0, rank=rank, world_size=world)
    batch = loader.batch(step)                  # the ContextBatch of this rank at ``step``
    for batch in loader: ...                    # steps start, start + 1, ... (``steps`` of them, or forever)
    torch.utils.data.DataLoader(loader, batch_size=None, num_workers=4)   # workers split the steps

Sources (the keys of ``tasks``, each with its mix weight; a list means weight 1 each):

- a task name, resolved through the registry (built-ins and plugins alike), or a ``Task``
  instance: pixels made on the fly from ``task.examples``;
- a latent cache (``lavin_core.data.cache.open_cache``): latents read from Zarr, for the task it caches.

Determinism and sharding: the global batch
of step ``s`` holds samples ``s * batch_size + i``; rank ``r`` of ``world_size`` takes
``i = r, r + world_size, ...``. All samples of a step share one task and one number of pairs,
drawn from ``(seed, s)`` with the mix weights; each sample is a pure function of
``(seed, sample index)``. So a run gives the same data on one process or many, and resuming
at step ``s`` needs nothing but ``s``.

How one sample is made: with ``pool_size=None`` (default) a task source draws ``num_pairs + 1``
fresh examples (``task.examples(num_pairs + 1, seed=sample_seed)``), the last being the query.
With ``pool_size=N`` the task's first ``N`` examples form a fixed pool, as a cache's committed
examples always do: the query is drawn uniformly from the pool and the prompt sampler (by
registry name or instance; ``random`` by default) picks the pairs from the rest.

Tasks drawn per context (``Task.instance``): a fresh sample's pairs and query all come from the
instance ``task.instance(context_seed(seed, sample index))``. A pool (``pool_size``, or a cache
built from such a task) is made of instance groups of ``max_pairs + 1`` examples (a cache: its
``group_size``), and a sample takes its query and pairs from one group
(``lavin_core.data.instances``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.errors import LavinError
from lavin_core.interfaces import Encoder, PromptSampler, Task
from lavin_core.data.instances import GroupedExamples, Subset, choose_group, group_positions, varies
from lavin_core.seeds import context_seed, mix_seed

#: The official training draws 1 to 8 example pairs per context.
MAX_PAIRS = 8


@attrs.frozen(kw_only=True)
class ContextBatch:
    """Contexts of one step on one rank, stacked. Every tensor is ``(B, C, T, H, W)``: pixels
    (``C = 3``, in [-1, 1]) or, when ``latent``, normalized latents.

    ``pairs``: ``num_pairs`` (input, target) tuples; ``query``: the query inputs; ``target``: what
    the model must generate for them. ``ids``: per sample, the example ids of its pairs then its
    query; ``indices``: the global sample indices.
    """

    task: str
    step: int
    latent: bool
    pairs: tuple[tuple[Tensor, Tensor], ...]
    query: Tensor
    target: Tensor
    ids: tuple[tuple[str, ...], ...]
    indices: tuple[int, ...]

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    def cond(self) -> Tensor:
        """The conditional sequence ``[in_1, tgt_1, ..., in_N, tgt_N, query]`` joined on the time axis:
        ``(B, C, T_in * (N + 1) + T_tgt * N, H, W)``, the J-DiT's ``cond`` when ``latent``."""
        frames = [tensor for pair in self.pairs for tensor in pair]
        return torch.cat([*frames, self.query], dim=2)

    def contexts(self) -> list[TaskContext]:
        """One ``TaskContext`` per sample (pixel batches only), e.g. to run a pipeline on them."""
        if self.latent:
            raise ValueError("contexts() needs a pixel batch; this one holds latents")
        return [
            TaskContext(
                task=self.task,
                pairs=[ExamplePair(input=i[b], target=t[b]) for i, t in self.pairs],
                query=self.query[b],
            )
            for b in range(len(self.indices))
        ]


@attrs.frozen
class _Sample:
    pairs: list[tuple[Tensor, Tensor]]
    query: tuple[Tensor, Tensor]
    ids: tuple[str, ...]


class _Without(Sequence):
    """``base`` without the item at ``skip`` (the query), as a sequence."""

    def __init__(self, base: Sequence, skip: int):
        self.base, self.skip = base, skip

    def __len__(self) -> int:
        return len(self.base) - 1

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.base[index if index < self.skip else index + 1]

    def position(self, index: int) -> int:
        return index if index < self.skip else index + 1


def _from_pool(pool: Sequence, num_pairs: int, rng: np.random.Generator, sampler: PromptSampler) -> tuple[list[int], int, Any]:
    """Positions in ``pool`` (items with ``.input`` and ``.target``) of the chosen pairs and of the query,
    and the query item (read once: a cache read costs I/O)."""
    if len(pool) < num_pairs + 1:
        raise LavinError(
            f"a pool of {len(pool)} examples cannot give a query and {num_pairs} pairs; "
            f"use a larger pool (pool_size / cache count) or max_pairs <= {max(len(pool) - 1, 0)}"
        )
    skip = int(rng.integers(len(pool)))
    query, rest = pool[skip], _Without(pool, skip)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    chosen = sampler.select(rest, query.input, num_pairs, generator=generator)
    return [rest.position(i) for i in chosen], skip, query


class _TaskSource:
    """Pixels on the fly from a ``Task``: fresh examples per sample, or a fixed pool."""

    latent = False

    def __init__(self, task: Task, *, pool_size: int | None, seed: int, group_size: int):
        self.task, self.name, self.pool_size, self.seed = task, task.name, pool_size, seed
        self.group_size = group_size if varies(task) else None
        self._pool: list | None = None

    def pool(self) -> list:
        if self._pool is None:
            if self.group_size is None:
                self._pool = list(self.task.examples(self.pool_size, seed=self.seed))
            else:
                grouped = GroupedExamples(self.task, seed=self.seed, group_size=self.group_size)
                self._pool = [grouped.example(i) for i in range(self.pool_size)]
        return self._pool

    def sample(self, num_pairs: int, sample_seed: int, instance_seed: int, rng: np.random.Generator,
               sampler: PromptSampler) -> _Sample:
        if self.pool_size is None:
            examples = list(self.task.instance(instance_seed).examples(num_pairs + 1, seed=sample_seed))
            if len(examples) != num_pairs + 1:
                raise LavinError(f"task {self.name!r} gave {len(examples)} examples when asked for {num_pairs + 1}")
            pairs, query = examples[:-1], examples[-1]
        else:
            pool = self.pool()
            if self.group_size is not None:
                pool = Subset(pool, choose_group(group_positions(range(len(pool)), self.group_size), num_pairs + 1, rng))
            chosen, skip, _ = _from_pool([e.pair for e in pool], num_pairs, rng, sampler)
            pairs, query = [pool[i] for i in chosen], pool[skip]
        return _Sample(
            pairs=[(e.pair.input, e.pair.target) for e in pairs],
            query=(query.pair.input, query.pair.target),
            ids=tuple(e.id for e in [*pairs, query]),
        )


class _CacheSource:
    """Latents from a latent cache (``lavin_core.data.cache.ZarrLatentCache``): its committed examples are
    the pool (for a task drawn per context, one instance group per sample)."""

    latent = True

    def __init__(self, cache: Any):
        self.cache, self.name = cache, cache.task
        size = cache.group_size
        self.groups = None if size is None else group_positions(cache.indices, size)

    def sample(self, num_pairs: int, sample_seed: int, instance_seed: int, rng: np.random.Generator,
               sampler: PromptSampler) -> _Sample:
        pool = self.cache if self.groups is None else Subset(self.cache, choose_group(self.groups, num_pairs + 1, rng))
        chosen, _, query = _from_pool(pool, num_pairs, rng, sampler)
        pairs = [pool[i] for i in chosen]
        return _Sample(
            pairs=[(p.input, p.target) for p in pairs],
            query=(query.input, query.target),
            ids=tuple(p.id for p in [*pairs, query]),
        )


def _is_cache(source: Any) -> bool:
    from lavin_core.data.cache import ZarrLatentCache

    return isinstance(source, ZarrLatentCache)


class ContextLoader(torch.utils.data.IterableDataset):
    """Deterministic, shardable batches of task contexts (see the module docstring).

    ``encoder``: encode pixel batches into latents in the loader (every batch is then latent)
    and refuse caches built with other weights. ``registry``: where task and prompt sampler
    names are looked up (default: the shared ``registry``).
    """

    def __init__(
        self,
        tasks: Mapping[Any, float] | Sequence[Any],
        *,
        batch_size: int = 1,
        min_pairs: int = 1,
        max_pairs: int = MAX_PAIRS,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pool_size: int | None = None,
        prompt_sampler: str | PromptSampler = "random",
        encoder: Encoder | None = None,
        start: int = 0,
        steps: int | None = None,
        registry: Any = None,
    ):
        if not 1 <= min_pairs <= max_pairs:
            raise ValueError(f"need 1 <= min_pairs <= max_pairs, got min_pairs={min_pairs}, max_pairs={max_pairs}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} (the global batch) must be a positive multiple of world_size {world_size}"
            )
        if pool_size is not None and pool_size < max_pairs + 1:
            raise ValueError(f"pool_size {pool_size} must be at least max_pairs + 1 = {max_pairs + 1}")
        if start < 0 or (steps is not None and steps < 0):
            raise ValueError(f"start and steps must be >= 0, got start={start}, steps={steps}")
        if registry is None:
            import registry
        self.batch_size, self.min_pairs, self.max_pairs = batch_size, min_pairs, max_pairs
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.start, self.steps, self.encoder = start, steps, encoder
        self.prompt_sampler = (
            registry.get_prompt_sampler(prompt_sampler) if isinstance(prompt_sampler, str) else prompt_sampler
        )
        weights = dict(tasks) if isinstance(tasks, Mapping) else {source: 1.0 for source in tasks}
        if not weights:
            raise ValueError("tasks is empty; give task names, Task instances or latent caches (with weights)")
        self.sources: list[_TaskSource | _CacheSource] = []
        self.weights: list[float] = []
        for key, weight in weights.items():
            if not weight > 0:
                raise ValueError(f"mix weight of {key!r} must be > 0, got {weight}")
            self.sources.append(self._source(key, registry, pool_size))
            self.weights.append(float(weight))
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"task {', '.join(map(repr, repeated))} is given twice; give each task one source")

    def _source(self, key: Any, registry: Any, pool_size: int | None):
        if isinstance(key, str):
            key = registry.get_task(key)
        if isinstance(key, Task):
            return _TaskSource(key, pool_size=pool_size, seed=mix_seed(self.seed, 0x9001), group_size=self.max_pairs + 1)
        if _is_cache(key):
            if self.encoder is not None:
                key.check_encoder(self.encoder)
            return _CacheSource(key)
        raise TypeError(f"a loader source must be a task name, a Task or a latent cache, got {type(key).__name__}")

    @property
    def task_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def plan(self, step: int) -> tuple[int, int]:
        """(source position, number of pairs) shared by every sample of ``step``."""
        rng = np.random.default_rng(mix_seed(self.seed, step, 0x7A5C))
        weights = np.array(self.weights) / sum(self.weights)
        return int(rng.choice(len(self.sources), p=weights)), int(rng.integers(self.min_pairs, self.max_pairs + 1))

    def indices(self, step: int) -> list[int]:
        """The global sample indices of ``step`` that this rank makes."""
        return [step * self.batch_size + i for i in range(self.rank, self.batch_size, self.world_size)]

    def batch(self, step: int) -> ContextBatch:
        """This rank's batch of ``step`` (``batch_size / world_size`` contexts)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        position, num_pairs = self.plan(step)
        source = self.sources[position]
        indices = self.indices(step)
        samples = []
        for index in indices:
            sample_seed = mix_seed(self.seed, index)
            samples.append(source.sample(num_pairs, sample_seed, context_seed(self.seed, index),
                                         np.random.default_rng(sample_seed), self.prompt_sampler))
        stack = _stacker(source.name)
        pairs = tuple(
            (stack([s.pairs[k][0] for s in samples]), stack([s.pairs[k][1] for s in samples])) for k in range(num_pairs)
        )
        query, target = stack([s.query[0] for s in samples]), stack([s.query[1] for s in samples])
        latent = source.latent
        if self.encoder is not None and not latent:
            pairs = tuple((self._encode(i), self._encode(t)) for i, t in pairs)
            query, target, latent = self._encode(query), self._encode(target), True
        return ContextBatch(
            task=source.name, step=step, latent=latent, pairs=pairs, query=query, target=target,
            ids=tuple(s.ids for s in samples), indices=tuple(indices),
        )

    @torch.no_grad()
    def _encode(self, pixels: Tensor) -> Tensor:
        param = next(self.encoder.parameters(), None)
        if param is not None:
            pixels = pixels.to(device=param.device, dtype=param.dtype)
        return self.encoder.encode(pixels)

    def __iter__(self) -> Iterator[ContextBatch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        step = self.start + worker
        while self.steps is None or step < self.start + self.steps:
            yield self.batch(step)
            step += workers

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("this loader is endless (steps=None) and has no length")
        return self.steps


def _stacker(task: str):
    def stack(tensors: list[Tensor]) -> Tensor:
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise LavinError(
                f"task {task!r} gave examples of different shapes {sorted(shapes)}; batches need one shape: "
                "give the task a size (e.g. get_task(..., size=64))"
            )
        return torch.stack(tensors)

    return stack

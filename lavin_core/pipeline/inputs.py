"""Contexts from user inputs: example pairs and a query in any image form -> a ``TaskContext``;
a registered task at the processing size (``task_at``) and example pairs drawn from its own
examples (``task_pairs``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.data.images import decode_side, resize, to_pixels
from lavin_core.errors import LavinError
from lavin_core.interfaces import Task


def build_context(
    pairs: Sequence[ExamplePair | tuple[Any, Any]],
    query: Any,
    *,
    task: str = "custom",
    resize_pairs: bool = True,
    size: tuple[int, int] | None = None,
) -> TaskContext:
    """A ``TaskContext`` from images in any form ``images.to_pixels`` takes.

    ``pairs``: ``ExamplePair``s or ``(input, target)`` tuples. With ``resize_pairs`` the pairs are
    resized to the query's height and width (as the authors' inference does), so templates of
    any size work with any query. ``size`` = ``(height, width)`` resizes the query (and then the
    pairs) to it first: the pipeline's processing size. Files that will be resized are decoded
    within ``images.decode_side`` of their new size (a huge one is read scaled down).
    """
    query_pixels = to_pixels(query, what="query", max_side=decode_side(max(size)) if size is not None else None)
    if size is not None:
        query_pixels = resize(query_pixels, size)
    size = tuple(query_pixels.shape[-2:])
    max_side = decode_side(max(size)) if resize_pairs else None
    built = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, ExamplePair):
            source, target = pair.input, pair.target
        else:
            try:
                source, target = pair
            except (TypeError, ValueError):
                raise LavinError(f"pairs[{index}] must be an ExamplePair or an (input, target) tuple") from None
            source = to_pixels(source, what=f"pairs[{index}].input", max_side=max_side)
            target = to_pixels(target, what=f"pairs[{index}].target", max_side=max_side)
        if resize_pairs:
            source, target = resize(source, size), resize(target, size)
        built.append(ExamplePair(input=source, target=target))
    return TaskContext(task=task, pairs=built, query=query_pixels)


def task_at(name: str, size: tuple[int, int], options: dict | None = None) -> Task:
    """Registered task ``name`` built at ``size`` = (height, width) with its ``options``, so that its
    examples and its reading of samples share the processing size; a task without a ``size`` option
    is built as it is (``task_pairs`` resizes its examples). An unknown name is the registry's
    one-line error."""
    import registry

    options = dict(options or {})
    try:
        return registry.get_task(name, **{"size": size, **options})
    except registry.PluginError:
        return registry.get_task(name, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"task {name!r} cannot draw {size[1]}x{size[0]} examples ({err}); process the query "
                         f"at another size, or give your own example pairs") from None


def task_pairs(task: Task, query: Tensor, num_pairs: int, *, prompt_sampler: str = "random",
               seed: int = 0) -> list[ExamplePair]:
    """``num_pairs`` example pairs from ``task``'s own examples (seed ``seed``), resized to the
    query's size and chosen for ``query`` ``(3, T, H, W)`` by the named prompt sampler."""
    import registry

    size = tuple(query.shape[-2:])
    chooser = registry.get_prompt_sampler(prompt_sampler)
    pool = [ExamplePair(input=resize(e.pair.input, size), target=resize(e.pair.target, size))
            for e in task.examples(max(4 * num_pairs, 16), seed=seed)]
    if not pool:
        raise LavinError(f"task {task.name!r} yielded no examples; give your own example pairs (--prompts DIR)")
    indices = chooser.select(pool, query, num_pairs, generator=torch.Generator().manual_seed(seed))
    return [pool[i] for i in indices]

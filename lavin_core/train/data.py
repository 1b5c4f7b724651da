"""Training data: the ``[data]`` and ``[tasks]`` sections turned into a ``ContextLoader``.

The loader (``lavin_core.data.loader``) makes the batch of any step on any rank as a pure function of
``(seed, step)``: the global batch of step ``s`` holds samples ``s * batch_size + i`` and rank
``r`` takes ``i = r, r + world_size, ...``. So a run gives the same data on one process or many,
and the data position saved in a checkpoint is simply the step.

Sources, by ``data.source``:

- ``generators``: the registered tasks named in ``[tasks]``, at ``image_size``;
- ``templates``: one ``folder`` task per template folder, named after the folder;
- ``cache``: Zarr latent caches (``lavin cache build``), each holding one task's latents.
"""

from __future__ import annotations

from lavin_core.errors import LavinError
from lavin_core.interfaces import Encoder
from lavin_core.data.loader import ContextLoader
from lavin_core.train.config import TrainConfig
from lavin_core.train.distributed import DistInfo


def data_sources(config: TrainConfig, *, encoder: Encoder | None = None) -> dict:
    """``{task or cache: mix weight}`` for the loader; every ``[tasks]`` name must have a source."""
    import registry

    data, size = config.data, config.data.image_size
    if data.source == "generators":
        return {registry.get_task(name, **{"size": size, **config.task_options.get(name, {})}): weight
                for name, weight in config.tasks.items()}
    if data.source == "templates":
        found = [registry.get_task("folder", path=folder, size=size) for folder in data.templates]
    else:
        from lavin_core.data.cache import open_cache

        found = [open_cache(url, encoder=encoder) for url in data.caches]
        if data.in_memory:
            found = [cache.load() for cache in found]
    by_name = {getattr(source, "task", None) if data.source == "cache" else source.name: source for source in found}
    missing = sorted(set(config.tasks) - set(by_name))
    if missing:
        what = "template folders (named by their last path part)" if data.source == "templates" else "latent caches"
        raise LavinError(
            f"[tasks] names {', '.join(missing)} but the {what} hold {', '.join(sorted(by_name)) or 'nothing'}; "
            "name each task as its source does"
        )
    return {by_name[name]: weight for name, weight in config.tasks.items()}


def make_loader(config: TrainConfig, info: DistInfo, *, encoder: Encoder | None = None,
                min_pairs: int | None = None, max_pairs: int | None = None, seed: int | None = None) -> ContextLoader:
    """This rank's loader; with ``encoder`` every batch holds latents (pixels are encoded in it).
    ``seed``: the loader's seed (default ``run.seed``), for a second stream of contexts."""
    return ContextLoader(
        data_sources(config, encoder=encoder),
        batch_size=config.train.batch_size,
        min_pairs=min_pairs or config.data.min_pairs,
        max_pairs=max_pairs or config.data.max_pairs,
        seed=config.run.seed if seed is None else seed,
        rank=info.rank,
        world_size=info.world_size,
        encoder=encoder,
    )

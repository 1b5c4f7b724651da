"""A latent cache on Zarr v3: a task's examples encoded once, read back bit-exact from any fsspec URL.

    cache = build_cache(registry.get_task("depth"), vae, "file:///data/depth.zarr", count=10_000)
    cache = open_cache("s3://bucket/depth.zarr", encoder=vae)   # refuses a cache of another encoder
    pair = cache[0]              # LatentPair: .input, .target (C, T', h, w) float32, .id, .index
    cache.get(pixels)            # the pipeline's LatentCache protocol: latents of known pixels, or None

Layout of the Zarr group at ``URL``::

    zarr.json            group attributes: format version, fingerprint, encoder, preprocessing, task, count
    inputs/, targets/    float32 arrays (count, C, T', h, w), one chunk per example (fill NaN)
    commits/NNNNNNNN.json  one small file per finished example: its id and the content keys of its pixels

Safety scheme (write, then commit):

- Every example owns exactly one chunk of ``inputs`` and of ``targets``, so writing it never
  reads or rewrites another example's bytes, and each chunk is replaced whole (Zarr's local store
  writes a temporary file and renames it; object stores replace objects atomically).
- An example becomes visible only when its commit file appears, written after both chunks by a
  write-then-rename. A build killed at any point leaves at worst chunks without a commit: readers
  never see them, and the next build (resume) encodes exactly the uncommitted examples again.
- Two writers on one cache need no lock: they create identical metadata (creation never
  overwrites), skip what the other already committed (the commit list is re-read before every
  batch), and if both encode one example they write the same bytes (examples are encoded one at
  a time, so the result does not depend on which others shared a batch), so whichever chunk and
  commit land last is identical to the other.
- The fingerprint hashes the encoder's class and every weight, plus the preprocessing (task,
  its options, seed, pixel shapes, and for a task drawn per context its ``group_size``). Opening or extending a cache with another fingerprint raises
  ``StaleCacheError``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import fsspec
import numpy as np
import torch
import zarr
from torch import Tensor

from lavin_core.atomic import write_bytes_to
from lavin_core.errors import LavinError
from lavin_core.interfaces import Encoder, Task
from lavin_core.data.instances import GroupedExamples, varies
from lavin_core.data.latents import pixel_key

FORMAT = "lavin-latent-cache"
FORMAT_VERSION = 1
COMMITS = "commits"


class StaleCacheError(LavinError):
    """A cache built with another encoder or preprocessing than the one asked for."""


class CacheError(LavinError):
    """A cache that is missing, not a LaVin latent cache, or asked for what it cannot hold."""


# ---------------------------------------------------------------------------------------------
# fingerprints


def encoder_fingerprint(encoder: Encoder) -> str:
    """sha256 of the encoder's class, compression factors and every tensor of its state dict."""
    digest = hashlib.sha256()
    kind = type(encoder)
    digest.update(f"{kind.__module__}.{kind.__qualname__}".encode())
    for attribute in ("latent_channels", "spatial_compression", "temporal_compression"):
        digest.update(f"{attribute}={getattr(encoder, attribute, None)}".encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _stable_repr(task: Task) -> str:
    # a default object repr carries a memory address that changes every run
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(task))


def preprocessing_for(task: Task, *, seed: int, input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> dict[str, Any]:
    """What decides the pixels that were encoded: the task, its options and seed, the pixel shapes."""
    return {
        "task": task.name,
        "task_repr": _stable_repr(task),
        "seed": seed,
        "input_shape": list(input_shape),
        "target_shape": list(target_shape),
        "pixels": "float32 (3, T, H, W) in [-1, 1]; latents are the posterior mean",
    }


def cache_fingerprint(encoder_hash: str, preprocessing: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(encoder_hash.encode())
    digest.update(json.dumps(preprocessing, sort_keys=True).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# storage


def _store(url: str, *, read_only: bool) -> zarr.abc.store.Store:
    fs, path = fsspec.core.url_to_fs(url)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return zarr.storage.LocalStore(path, read_only=read_only)  # atomic chunk writes (temp file + rename)
    return zarr.storage.FsspecStore.from_url(url, read_only=read_only)


@attrs.frozen(kw_only=True)
class LatentPair:
    """One cached example: latents of its input and target ``(C, T', h, w)`` float32, its id and index."""

    input: Tensor
    target: Tensor
    id: str
    index: int


class ZarrLatentCache:
    """A cache opened for reading (``open_cache``) or being built (``build_cache``).

    A sequence of its committed examples in index order: ``len(cache)``, ``cache[k]``, iteration.
    ``refresh()`` picks up examples committed since it was opened.
    """

    def __init__(self, url: str, group: zarr.Group, fs: fsspec.AbstractFileSystem, root: str):
        self.url, self._group, self._fs, self._root = url, group, fs, root.rstrip("/")
        self.attrs: dict[str, Any] = dict(group.attrs)
        self._inputs, self._targets = group["inputs"], group["targets"]
        self._loaded = False
        self._commits: dict[int, dict[str, Any]] = {}
        self._order: list[int] = []
        self._by_key: dict[str, tuple[int, str]] | None = None
        self.refresh()

    # -- metadata ----------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return self.attrs["preprocessing"]["task"]

    @property
    def group_size(self) -> int | None:
        """Examples per drawn instance for a task drawn per context (``lavin_core.data.instances``), else None."""
        return self.attrs["preprocessing"].get("group_size")

    @property
    def count(self) -> int:
        """How many examples the cache was created for (committed or not)."""
        return int(self.attrs["count"])

    @property
    def fingerprint(self) -> str:
        return self.attrs["fingerprint"]

    @property
    def complete(self) -> bool:
        return len(self._order) == self.count

    @property
    def indices(self) -> list[int]:
        """Example indices that are committed, ascending."""
        return list(self._order)

    def is_committed(self, index: int) -> bool:
        return index in self._commits

    def check_encoder(self, encoder: Encoder, *, encoder_hash: str | None = None) -> None:
        """Raise ``StaleCacheError`` unless the cache was built with exactly this encoder's weights."""
        found = encoder_hash or encoder_fingerprint(encoder)
        if found != self.attrs["encoder_fingerprint"]:
            raise StaleCacheError(
                f"latent cache {self.url} was built with encoder {self.attrs['encoder']} whose weights hash to "
                f"{self.attrs['encoder_fingerprint'][:12]}, but the encoder given ({type(encoder).__name__}) hashes to "
                f"{found[:12]}; rebuild it with `lavin cache build ... --out NEW_URL` or use the encoder it was built with"
            )

    # -- reading -----------------------------------------------------------------------------------

    def _commit_dir(self) -> str:
        return f"{self._root}/{COMMITS}"

    def refresh(self) -> None:
        """Re-read the list of committed examples (cheap: one listing plus the new commit files)."""
        folder = self._commit_dir()
        self._fs.invalidate_cache(folder)
        try:
            names = self._fs.ls(folder, detail=False)
        except FileNotFoundError:
            names = []
        new = {}
        for path in names:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".json") and not name.startswith("."):
                index = int(name[:-5])
                if index not in self._commits and index < self.count:
                    new[index] = path
        if new:
            for path, data in self._fs.cat(list(new.values())).items():
                record = json.loads(data)
                self._commits[int(record["index"])] = record
            self._order = sorted(self._commits)
            self._by_key = None
            if self._loaded:
                self.load()

    def load(self) -> ZarrLatentCache:
        """Read all latents into memory at once (one read per array instead of one per example), so
        that reading examples no longer touches the store; ``refresh`` reads them again. Returns self.

        For training on caches that fit in RAM: on a 2-core CPU, 16 contexts read one example at a
        time took 0.28 s, a third of a lavin-tiny training step.
        """
        self._inputs, self._targets = np.asarray(self._group["inputs"][:]), np.asarray(self._group["targets"][:])
        self._loaded = True
        return self

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, position: int) -> LatentPair:
        if not -len(self) <= position < len(self):
            raise IndexError(f"cache {self.url} holds {len(self)} committed examples; position {position} is out of range")
        return self.example(self._order[position])

    def __iter__(self) -> Iterator[LatentPair]:
        for index in self._order:
            yield self.example(index)

    def example(self, index: int) -> LatentPair:
        """The committed example with this example index (not position)."""
        if index not in self._commits:
            raise KeyError(f"example {index} is not committed in {self.url} (committed: {len(self)} of {self.count})")
        return LatentPair(
            input=torch.from_numpy(np.array(self._inputs[index])),  # a copy: never a view of the loaded arrays
            target=torch.from_numpy(np.array(self._targets[index])),
            id=self._commits[index]["id"],
            index=index,
        )

    def ids(self) -> list[str]:
        return [self._commits[i]["id"] for i in self._order]

    def get(self, pixels: Tensor) -> Tensor | None:
        """``LatentCache`` protocol: the latents of these exact pixels (an input or target), or None."""
        if self._by_key is None:
            self._by_key = {}
            for index, record in self._commits.items():
                self._by_key[record["input_key"]] = (index, "input")
                self._by_key[record["target_key"]] = (index, "target")
        found = self._by_key.get(pixel_key(pixels))
        if found is None:
            return None
        index, role = found
        array = self._inputs if role == "input" else self._targets
        return torch.from_numpy(np.asarray(array[index]))

    def __repr__(self) -> str:
        return f"ZarrLatentCache({self.url!r}, task={self.task!r}, committed={len(self)}/{self.count})"

    # -- writing -----------------------------------------------------------------------------------

    def _write(self, index: int, input_latents: np.ndarray, target_latents: np.ndarray, record: dict[str, Any]) -> None:
        # into the store, never into arrays ``load`` read (they are refreshed on the next ``refresh``)
        self._group["inputs"][index] = input_latents
        self._group["targets"][index] = target_latents
        write_bytes_to(self._fs, f"{self._commit_dir()}/{index:08d}.json", json.dumps(record).encode())
        self._commits[index] = record


def _open_group(url: str, *, read_only: bool) -> zarr.Group | None:
    try:
        group = zarr.open_group(store=_store(url, read_only=read_only), mode="r" if read_only else "r+")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    if group.attrs.get("format") != FORMAT:
        raise CacheError(f"{url} is a Zarr group but not a LaVin latent cache (no format={FORMAT!r} attribute)")
    if group.attrs.get("format_version") != FORMAT_VERSION:
        raise CacheError(
            f"latent cache {url} has format version {group.attrs.get('format_version')}; this LaVin reads "
            f"version {FORMAT_VERSION}: rebuild it"
        )
    return group


def open_cache(url: str, *, encoder: Encoder | None = None) -> ZarrLatentCache:
    """Open the cache at ``url`` for reading; with ``encoder``, refuse it unless built with that encoder."""
    group = _open_group(url, read_only=True)
    if group is None:
        raise CacheError(f"no latent cache at {url}; build one with `lavin cache build --task NAME --count N --out {url}`")
    fs, root = fsspec.core.url_to_fs(url)
    cache = ZarrLatentCache(url, group, fs, root)
    if encoder is not None:
        cache.check_encoder(encoder)
    return cache


def _create_or_open(url: str, attributes: dict[str, Any], input_shape, target_shape) -> ZarrLatentCache:
    """The cache at ``url``, creating it if absent; concurrent creators write the same metadata."""
    group = _open_group(url, read_only=False)
    if group is None:
        try:
            group = zarr.create_group(store=_store(url, read_only=False), attributes=attributes, overwrite=False)
        except zarr.errors.ContainsGroupError:  # another writer created it first
            group = _open_group(url, read_only=False)
    if group.attrs.get("fingerprint") != attributes["fingerprint"]:
        raise StaleCacheError(
            f"latent cache {url} exists with fingerprint {str(group.attrs.get('fingerprint'))[:12]} (encoder "
            f"{group.attrs.get('encoder')}, preprocessing {group.attrs.get('preprocessing')}), but this build has "
            f"{attributes['fingerprint'][:12]}: another encoder, task option, seed or size; use a new --out URL"
        )
    if attributes["count"] > group.attrs["count"]:
        raise CacheError(
            f"latent cache {url} was created for {group.attrs['count']} examples; ask for at most that many "
            f"or build into a new URL"
        )
    for name, shape in (("inputs", input_shape), ("targets", target_shape)):
        if name not in group:
            try:
                group.create_array(
                    name, shape=(group.attrs["count"], *shape), chunks=(1, *shape), dtype="float32",
                    fill_value=float("nan"), overwrite=False,
                )
            except zarr.errors.ContainsArrayError:
                pass
    fs, root = fsspec.core.url_to_fs(url)
    return ZarrLatentCache(url, group, fs, root)


def _encode(encoder: Encoder, pixels: list[Tensor]) -> np.ndarray:
    """Latents of each pixel tensor, encoded one at a time.

    One at a time, not as a batch: convolution and matmul kernels pick their blocking, and so
    their summation order, by batch size, so an example encoded in a batch of 8 and in a batch of
    3 differs in the last bits (2e-6). Alone, an example's latents depend on nothing but its
    pixels and the encoder, so two builders (or a resumed build) write it bit for bit the same.
    """
    param = next(encoder.parameters(), None)
    out = []
    for item in pixels:
        batch = item.unsqueeze(0)
        if param is not None:
            batch = batch.to(device=param.device, dtype=param.dtype)
        out.append(encoder.encode(batch).float().cpu().numpy()[0])
    return np.stack(out)


def _first_example(task: Task, seed: int) -> Any:
    if callable(getattr(task, "example", None)):
        example = task.example(0, seed=seed)
    else:
        example = next(iter(task.examples(1, seed=seed)), None)
    if example is None:
        raise CacheError(f"task {task.name!r} gave no examples for seed {seed}")
    return example


def _examples_except(task: Task, count: int, seed: int, done: set[int]) -> Iterator[tuple[int, Any]]:
    """``(index, example)`` for the examples not in ``done``; tasks with ``example(index, seed=)``
    (all built-ins) make only those, others are iterated through."""
    if callable(getattr(task, "example", None)):
        for index in range(count):
            if index not in done:
                yield index, task.example(index, seed=seed)
        return
    for index, example in enumerate(task.examples(count, seed=seed)):
        if index not in done:
            yield index, example


@torch.no_grad()
def build_cache(
    task: Task,
    encoder: Encoder,
    url: str,
    *,
    count: int,
    seed: int = 0,
    batch_size: int = 8,
    group_size: int = 9,
    progress: bool = False,
) -> ZarrLatentCache:
    """Encode ``count`` examples of ``task`` (seed ``seed``) into the cache at ``url``; resumes if it exists.

    A task drawn per context (``Task.instance``) is cached in instance groups of ``group_size``
    examples (default 9: a query and up to 8 pairs), so that a context's pairs share one instance.

    Examples already committed (by an earlier, interrupted run or by a concurrent writer) are not
    encoded again. ``batch_size`` examples are made, encoded (each on its own, see ``_encode``)
    and committed per round, so the bytes written never depend on it. Returns the cache, opened
    for reading.
    """
    if count < 1 or batch_size < 1 or group_size < 2:
        raise ValueError(f"count and batch_size must be >= 1 and group_size >= 2 (a query and a pair), got "
                         f"count={count}, batch_size={batch_size}, group_size={group_size}")
    grouped = GroupedExamples(task, seed=seed, group_size=group_size) if varies(task) else None
    first = _first_example(task, seed) if grouped is None else grouped.example(0)
    input_latent = tuple(encoder.latent_shape(first.pair.input.shape))
    target_latent = tuple(encoder.latent_shape(first.pair.target.shape))
    encoder_hash = encoder_fingerprint(encoder)
    preprocessing = preprocessing_for(
        task, seed=seed, input_shape=tuple(first.pair.input.shape), target_shape=tuple(first.pair.target.shape)
    )
    if grouped is not None:
        preprocessing["group_size"] = group_size
    attributes = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fingerprint": cache_fingerprint(encoder_hash, preprocessing),
        "encoder_fingerprint": encoder_hash,
        "encoder": type(encoder).__name__,
        "preprocessing": preprocessing,
        "count": count,
    }
    cache = _create_or_open(url, attributes, input_latent, target_latent)
    expected_shapes = (tuple(first.pair.input.shape), tuple(first.pair.target.shape))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, initial=len(cache), unit="example", desc=f"caching {task.name}")

    def flush(batch: list[tuple[int, Any]]) -> None:
        cache.refresh()  # a concurrent writer may have done some of these meanwhile
        batch = [(i, ex) for i, ex in batch if not cache.is_committed(i)]
        if not batch:
            return
        for index, example in batch:
            shapes = (tuple(example.pair.input.shape), tuple(example.pair.target.shape))
            if shapes != expected_shapes:
                raise CacheError(
                    f"example {index} of {task.name!r} has input/target shapes {shapes} but example 0 has "
                    f"{expected_shapes}; a cache holds one shape: give the task a size (e.g. --size 64)"
                )
        inputs = _encode(encoder, [ex.pair.input for _, ex in batch])
        targets = _encode(encoder, [ex.pair.target for _, ex in batch])
        for (index, example), input_latents, target_latents in zip(batch, inputs, targets):
            record = {
                "index": index,
                "id": example.id or f"{task.name}-{index:08d}",
                "input_key": pixel_key(example.pair.input),
                "target_key": pixel_key(example.pair.target),
            }
            cache._write(index, input_latents, target_latents, record)
        if bar is not None:
            bar.update(len(batch))

    pending: list[tuple[int, Any]] = []
    done = set(cache.indices)
    todo = (_examples_except(task, count, seed, done) if grouped is None
            else ((i, grouped.example(i)) for i in range(count) if i not in done))
    for index, example in todo:
        pending.append((index, example))
        if len(pending) == batch_size:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    if bar is not None:
        bar.close()
    return open_cache(url)

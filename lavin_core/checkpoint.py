"""Checkpoints: strict state-dict loading and our own ``save_pretrained`` / ``from_pretrained`` format.

A checkpoint is a folder (local path or any fsspec URL: ``memory://``, ``file://``, ``s3://`` ...)
holding two files:

- ``config.json``: the model's attrs config (``attrs.asdict``) plus ``_class_name``;
- ``model.safetensors``: the state dict.

Loading builds the model on the meta device (no memory, no initialisation) and fills it with
``load_state_dict(assign=True)``. Every mismatch between the file and the model is an error that
names each missing, unexpected and mis-shaped tensor: nothing is silently dropped or left random.

Nothing here knows about a particular model; a model class opts in with ``PretrainedMixin``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import fsspec
from fsspec.implementations.local import LocalFileSystem
import safetensors.torch
import torch
from safetensors import safe_open
from torch import Tensor, nn

from lavin_core.atomic import atomic_folder
from lavin_core.devices import check_device
from lavin_core.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound=nn.Module)
C = TypeVar("C")


# ---------------------------------------------------------------------------------------------
# configs


def config_to_dict(config: Any) -> dict[str, Any]:
    """The JSON-ready dict of an attrs config instance (tuples become lists)."""
    if not attrs.has(type(config)):
        raise TypeError(f"a config must be an attrs class instance, got {type(config).__name__}")
    return attrs.asdict(config)


def config_from_dict(config_cls: type[C], data: Mapping[str, Any], *, source: str = "config") -> C:
    """Rebuild an attrs config from ``config_to_dict`` output; keys starting with ``_`` are metadata.

    JSON has no tuples, so lists come back as tuples (configs are frozen). Unknown keys and values
    that the config's validators reject raise ``CheckpointError`` naming ``source``.
    """
    if not attrs.has(config_cls):
        raise TypeError(f"config_cls must be an attrs class, got {config_cls!r}")
    known = {f.name for f in attrs.fields(config_cls) if f.init}
    values = {k: v for k, v in data.items() if not k.startswith("_")}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointError(
            f"{source}: unknown {config_cls.__name__} field(s) {', '.join(unknown)}; "
            f"known fields: {', '.join(sorted(known))}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: invalid {config_cls.__name__}: {err}") from err


# ---------------------------------------------------------------------------------------------
# state dicts


#: How many names a one-line mismatch message shows per kind; the exception holds them all.
SHOWN_NAMES = 3
#: Top-level tensor-name prefixes that identify each network's state dict.
_NETWORK_PREFIXES = {
    "J-DiT": ("x_embedder", "t_embedder", "blocks", "final_layer", "prompt_embed", "answer_embed"),
    "ST-VAE": ("encoder", "decoder"),
}
_WRAPPER_PREFIXES = {"module.": "DDP/DataParallel", "_orig_mod.": "torch.compile", "model.": "a training wrapper"}


class StateDictMismatchError(CheckpointError):
    """A state dict whose names or shapes do not fit the model. The message is one line (counts and
    the first few names); ``missing``, ``unexpected`` and ``mis_shaped`` hold the full lists and
    ``details()`` prints them one per line (``lavin --verbose``)."""

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str], mis_shaped: list[str]):
        super().__init__(message)
        self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped

    def details(self) -> str:
        sections = (("missing", self.missing), ("unexpected", self.unexpected), ("wrong shape", self.mis_shaped))
        return "\n".join(f"{kind}: {name}" for kind, names in sections for name in names)


def describe_layout(names: Sequence[str]) -> str:
    """What a state dict with these tensor names looks like: which network, or which wrapper around one."""
    names = list(names)
    if not names:
        return "an empty state dict"
    for prefix, wrapper in _WRAPPER_PREFIXES.items():
        if all(n.startswith(prefix) for n in names):
            inner = describe_layout([n[len(prefix):] for n in names])
            return f"{inner} wrapped by {wrapper} (every name starts with {prefix!r}; strip it)"
    tops = {n.split(".", 1)[0] for n in names}
    for network, prefixes in _NETWORK_PREFIXES.items():
        if tops <= set(prefixes) and len(tops & set(prefixes)) >= min(2, len(prefixes)):
            blocks = {n.split(".")[1] for n in names if n.startswith("blocks.") and n.count(".") > 1}
            depth = f", {len(blocks)} blocks" if blocks else ""
            return f"a {network} state dict ({len(names)} tensors{depth}; LaVin's and the authors' layouts share these names)"
    if {"state", "param_groups"} & tops:
        return "an optimizer state, not model weights"
    shown = ", ".join(sorted(tops)[:SHOWN_NAMES])
    return f"an unknown layout ({len(names)} tensor(s) under {shown}{', ...' if len(tops) > SHOWN_NAMES else ''})"


def _first(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f", ... ({len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else "")


def check_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> None:
    """Raise ``StateDictMismatchError`` if names or shapes differ: one line with the counts, the
    first few names of each kind and the layout the file looks like (full lists on the error).

    Works on modules that live on the meta device (only names and shapes are compared).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mis_shaped = sorted(
        f"{name} (checkpoint {tuple(state_dict[name].shape)}, model {tuple(expected[name].shape)})"
        for name in set(expected) & set(state_dict)
        if tuple(state_dict[name].shape) != tuple(expected[name].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_first(unexpected)}")
    if mis_shaped:
        problems.append(f"wrong shape {len(mis_shaped)}: {_first(mis_shaped)}")
    if problems:
        raise StateDictMismatchError(
            f"{source} does not fit {type(module).__name__} ({len(expected)} tensors): the file looks like "
            f"{describe_layout(list(state_dict))}; " + "; ".join(problems)
            + " (is the config right for this checkpoint? `lavin --verbose` lists every name)",
            missing=missing, unexpected=unexpected, mis_shaped=mis_shaped,
        )


def load_state_dict_strict(
    module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str, assign: bool = False
) -> None:
    """Load ``state_dict`` into ``module`` after checking names and shapes (see ``check_state_dict``).

    Floating-point tensors are cast to the dtype of the model's tensor of the same name. With
    ``assign=True`` (for modules built on the meta device) the tensors are adopted, not copied;
    afterwards no parameter or buffer may be left on the meta device.
    """
    check_state_dict(module, state_dict, source=source)
    expected = module.state_dict()
    cast = {
        name: tensor.to(expected[name].dtype)
        if tensor.is_floating_point() and expected[name].is_floating_point()
        else tensor
        for name, tensor in state_dict.items()
    }
    module.load_state_dict(cast, strict=True, assign=assign)
    if assign:
        left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
        if left:
            raise CheckpointError(
                f"{source}: {type(module).__name__} still has tensors on the meta device after "
                f"loading: {', '.join(left)}; make them persistent or compute them on the fly"
            )


def _join(url: str, name: str) -> str:
    return f"{url.rstrip('/')}/{name}"


def target_dtypes(module: nn.Module) -> dict[str, torch.dtype]:
    """The dtype of each floating-point tensor of ``module``'s state dict (meta modules work too)."""
    return {name: t.dtype for name, t in module.state_dict().items() if t.is_floating_point()}


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _read_local_safetensors(path: str, device: str, dtypes: Mapping[str, torch.dtype]) -> dict[str, Tensor]:
    """Tensors already in the dtype wanted are views of the file's memory map (no copy); one to be cast
    is read on its own (``pread``), cast, and its file copy dropped, so no tensor is held twice."""
    tensors: dict[str, Tensor] = {}
    with safe_open(path, framework="pt", device=device) as mapped, \
            safe_open(path, framework="pt", device=device, backend="pread") as unmapped:
        for name in mapped.keys():
            stored = _SAFETENSORS_DTYPES.get(mapped.get_slice(name).get_dtype())
            wanted = dtypes.get(name, stored)
            if stored is None or wanted == stored or not (stored.is_floating_point and wanted.is_floating_point):
                tensors[name] = mapped.get_tensor(name)
            else:
                tensors[name] = unmapped.get_tensor(name).to(wanted)
    return tensors


def read_safetensors(
    url: str, *, device: str | torch.device = "cpu", dtypes: Mapping[str, torch.dtype] | None = None
) -> dict[str, Tensor]:
    """All tensors of a safetensors file at a local path or fsspec URL.

    ``dtypes`` (name -> dtype, e.g. ``target_dtypes(model)``) casts floating-point tensors as they
    are read. A local file is memory-mapped: tensors stored in the dtype wanted share the file's
    pages (a 6.8 GB bf16 checkpoint loaded in bf16 takes no memory beyond the page cache), and a
    tensor that must be cast exists twice only while it is converted.
    """
    device = check_device(device)
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        raise CheckpointError(f"{url} is a folder, not a safetensors file")
    dtypes = dtypes or {}
    try:
        if isinstance(fs, LocalFileSystem):
            return _read_local_safetensors(path, str(device), dtypes)
        with fs.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as err:
        raise CheckpointError(f"no safetensors file at {url}") from err
    except safetensors.SafetensorError as err:
        raise CheckpointError(f"{url} is not a readable safetensors file: {err}") from err
    try:
        tensors = safetensors.torch.load(data)
    except safetensors.SafetensorError as err:
        raise CheckpointError(f"{url} is not a readable safetensors file: {err}") from err
    return {k: v.to(device=device, dtype=dtypes.get(k, v.dtype) if v.is_floating_point() else v.dtype)
            for k, v in tensors.items()}


_DTYPE_CODES = {dtype: code for code, dtype in _SAFETENSORS_DTYPES.items()}


def write_safetensors(
    path: str | os.PathLike,
    layout: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
    tensor_of: Callable[[str], Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a safetensors file at the local ``path`` one tensor at a time, atomically (temp name + rename).

    ``layout`` lists ``(name, dtype, shape)`` in file order; ``tensor_of(name)`` makes (or gathers)
    each tensor when its turn comes, so no more than one of them need exist at once: this is how a
    checkpoint larger than memory, or a sharded model's full weights, is written.
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in layout:
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    path = os.fspath(path)
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb") as f:
            f.write(struct.pack("<Q", len(encoded)))
            f.write(encoded)
            for name, dtype, shape in layout:
                tensor = tensor_of(name)
                if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                    raise ValueError(f"{name}: got {tensor.dtype} {tuple(tensor.shape)}, the layout says {dtype} {shape}")
                f.write(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


# ---------------------------------------------------------------------------------------------
# our checkpoint folders


def save_pretrained(module: nn.Module, config: Any, url: str) -> None:
    """Write ``config.json`` and ``model.safetensors`` for ``module`` into the folder ``url``, atomically.

    The folder is filled under a temporary name and renamed into place (``atomic.atomic_folder``):
    a reader, or a process killed mid-write, sees the complete old folder or the complete new
    one. Other files already in the folder are kept. The weights are streamed tensor by tensor
    (no second copy in memory); on object stores ``config.json``, which every loader reads
    first, is written last.
    """
    meta = {"_class_name": type(module).__name__, **config_to_dict(config)}
    state = module.state_dict()
    layout = [(name, t.dtype, tuple(t.shape)) for name, t in state.items()]
    with atomic_folder(url, last=(CONFIG_NAME,)) as folder:
        with open(os.path.join(folder, CONFIG_NAME), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=False)
        write_safetensors(os.path.join(folder, WEIGHTS_NAME), layout, state.__getitem__, metadata={"format": "pt"})


def _read_config_json(url: str) -> dict[str, Any]:
    fs, path = fsspec.core.url_to_fs(url)
    source = _join(url, CONFIG_NAME)
    if fs.isfile(path):
        raise CheckpointError(f"{url} is a file, but a save_pretrained checkpoint is a folder ({CONFIG_NAME} + "
                              f"{WEIGHTS_NAME}); pass the folder, or a .safetensors / .pt file where one is taken")
    try:
        with fs.open(_join(path, CONFIG_NAME), "r") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise CheckpointError(f"no {CONFIG_NAME} at {url}; is it a folder written by save_pretrained?") from err
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{source} must hold a JSON object, got {type(data).__name__}")
    return data


def _check_class(url: str, saved: str | None, wanted: str) -> None:
    if saved is not None and saved != wanted:
        raise CheckpointError(f"{url} holds a {saved} checkpoint, not a {wanted}; load it with {saved}.from_pretrained "
                              f"(or pass it where a {saved} is taken)")


def load_config(config_cls: type[C], url: str) -> C:
    """The config saved by ``save_pretrained`` in the folder ``url``."""
    return config_from_dict(config_cls, _read_config_json(url), source=_join(url, CONFIG_NAME))


def load_pretrained(
    build: Callable[[C], M],
    url: str,
    *,
    config_cls: type[C] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> M:
    """The model saved by ``save_pretrained`` in ``url``: ``build(config)`` on the meta device, then filled.

    ``build`` is a model class (or any ``config -> module`` callable); ``config_cls`` defaults to
    ``build.config_class``. The weights load onto ``device`` in the model's dtype: ``dtype`` if
    given, else the dtype ``build`` makes (float32 for our models).
    """
    config_cls = config_cls or getattr(build, "config_class", None)
    if config_cls is None:
        raise TypeError(f"pass config_cls: {build!r} has no config_class attribute")
    data = _read_config_json(url)
    if isinstance(build, type):  # the saved class is known before the config is parsed
        _check_class(url, data.get("_class_name"), build.__name__)
    config = config_from_dict(config_cls, data, source=_join(url, CONFIG_NAME))
    with torch.device("meta"):
        module = build(config)
    if dtype is not None:
        module.to(dtype)  # on the meta device: the checkpoint is cast as it is read, tensor by tensor
    _check_class(url, data.get("_class_name"), type(module).__name__)
    weights = _join(url, WEIGHTS_NAME)
    tensors = read_safetensors(weights, device=device, dtypes=target_dtypes(module))
    load_state_dict_strict(module, tensors, source=weights, assign=True)
    return module


def read_pretrained_weights(module: nn.Module, config: Any, url: str) -> dict[str, Tensor]:
    """The weights saved by ``save_pretrained`` in ``url``, checked to fit ``module`` (built from ``config``,
    possibly on the meta device), in its dtypes; memory-mapped where they can be.

    For fine-tuning: the saved config must equal ``config`` (else ``CheckpointError`` lists the
    fields that differ), then names and shapes are checked as ``check_state_dict`` does.
    """
    saved = load_config(type(config), url)
    differ = [
        f"{field.name}={getattr(saved, field.name)!r} (wanted {getattr(config, field.name)!r})"
        for field in attrs.fields(type(config))
        if getattr(saved, field.name) != getattr(config, field.name)
    ]
    if differ:
        raise CheckpointError(
            f"{url} holds another architecture: {', '.join(differ)}; pick the preset it was trained with"
        )
    weights = _join(url, WEIGHTS_NAME)
    tensors = read_safetensors(weights, dtypes=target_dtypes(module))
    check_state_dict(module, tensors, source=weights)
    return tensors


def load_pretrained_into(module: nn.Module, config: Any, url: str) -> None:
    """Copy the weights saved by ``save_pretrained`` in ``url`` into ``module``, built from ``config``
    (checked as ``read_pretrained_weights`` does)."""
    tensors = read_pretrained_weights(module, config, url)
    load_state_dict_strict(module, tensors, source=_join(url, WEIGHTS_NAME))


class PretrainedMixin:
    """``from_preset`` / ``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built as ``cls(config)``.

    The class sets ``config_class`` and ``get_preset`` (its network's preset lookup) and stores its
    config as ``self.config``.
    """

    config_class: ClassVar[type]
    get_preset: ClassVar[Callable[..., Any]]
    config: Any

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Any:
        """A randomly initialised model of the preset ``name``, some fields replaced by ``overrides``."""
        return cls(cls.get_preset(name, **overrides))  # type: ignore[call-arg]

    def save_pretrained(self, url: str) -> None:
        """Write this model's config and weights into the folder ``url`` (local path or fsspec URL)."""
        save_pretrained(self, self.config, url)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls, url: str, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> Any:
        """The model saved in ``url`` by ``save_pretrained``, on ``device``, in ``dtype`` (default float32)."""
        return load_pretrained(cls, url, config_cls=cls.config_class, device=device, dtype=dtype)

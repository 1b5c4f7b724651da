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
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import fsspec
from fsspec.implementations.local import LocalFileSystem
import safetensors.torch
import torch
from torch import Tensor, nn

from lavin_core.atomic import atomic_folder
from lavin_core.devices import check_device, supports_pinned_memory
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


def read_safetensors(url: str, *, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """All tensors of a safetensors file at a local path or fsspec URL (memory-mapped when local).

    ``device`` is checked first (``check_device``). safetensors pins host memory when it loads
    straight onto an accelerator, so that path is taken only where pinning works (CUDA); elsewhere
    the tensors are read on the CPU and moved.
    """
    device = check_device(device)
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        raise CheckpointError(f"{url} is a folder, not a safetensors file")
    try:
        if isinstance(fs, LocalFileSystem):
            if supports_pinned_memory(device):
                return safetensors.torch.load_file(path, device=str(device))
            return {k: v.to(device) for k, v in safetensors.torch.load_file(path, device="cpu").items()}
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
    return {k: v.to(device) for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------
# our checkpoint folders


def save_pretrained(module: nn.Module, config: Any, url: str) -> None:
    """Write ``config.json`` and ``model.safetensors`` for ``module`` into the folder ``url``, atomically.

    The folder is filled under a temporary name and renamed into place (``atomic.atomic_folder``):
    a reader, or a process killed mid-write, sees the complete old folder or the complete new
    one. Other files already in the folder are kept. On object stores ``config.json``, which
    every loader reads first, is written last.
    """
    meta = {"_class_name": type(module).__name__, **config_to_dict(config)}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    with atomic_folder(url, last=(CONFIG_NAME,)) as folder:
        with open(os.path.join(folder, CONFIG_NAME), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=False)
        # straight to disk, without a second copy in memory
        safetensors.torch.save_file(tensors, os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt"})


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
        module.to(dtype)  # before loading, so that big checkpoints are cast once, tensor by tensor
    _check_class(url, data.get("_class_name"), type(module).__name__)
    weights = _join(url, WEIGHTS_NAME)
    load_state_dict_strict(module, read_safetensors(weights, device=device), source=weights, assign=True)
    return module


def load_pretrained_into(module: nn.Module, config: Any, url: str) -> None:
    """Copy the weights saved by ``save_pretrained`` in ``url`` into ``module``, built from ``config``.

    For fine-tuning: the saved config must equal ``config`` (else ``CheckpointError`` lists the
    fields that differ), then names and shapes are checked as ``load_state_dict_strict`` does.
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
    load_state_dict_strict(module, read_safetensors(weights), source=weights)


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

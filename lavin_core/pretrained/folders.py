"""Named models that ship inside the package, and model folders in the same layout.

    >>> from lavin_core.pipeline import load_pipeline
    >>> pipe = load_pipeline("lavin-tiny")          # the shipped weights, float32 on the CPU

A model folder holds the two halves of a pipeline and a small index::

    lavin-tiny/
        model_index.json         # name, weight dtype, the tasks the J-DiT was trained on, ...
        dit/  config.json model.safetensors    (JDiT.save_pretrained layout)
        vae/  config.json model.safetensors    (STVAE.save_pretrained layout)

Shipped weights are stored in half precision to keep the package small; loading casts them to
the model's dtype (float32 unless asked otherwise). ``scripts/export_shipped.py`` writes such a
folder from two ``lavin train`` exports.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import attrs

from lavin_core.devices import check_precision
from lavin_core.errors import CheckpointError, UnknownNameError
from lavin_core.samplers.options import OptionError, SamplingOptions

#: Where the shipped model folders live inside the package.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Shipped model name -> its folder under ``WEIGHTS_DIR``.
MODELS: dict[str, str] = {"lavin-tiny": "lavin-tiny", "lavin-tiny-icl": "lavin-tiny-icl"}
#: The model ``load_pipeline`` and ``lavin run`` / ``demo`` / ``bench`` use when none is named.
DEFAULT_MODEL = "lavin-tiny"
#: The index file of a model folder.
INDEX_FILE = "model_index.json"
#: ``model_index.json`` keys a model recommends sampling with -> the ``SamplingOptions`` field each sets.
#: ``image_size`` is the size the model was trained at, so queries are processed at it by default;
#: ``max_pairs`` the most pairs one training context held, so ``lavin run`` uses that many;
#: ``num_steps`` the sampler steps its quality was measured at (a deeper J-DiT may recommend fewer);
#: ``adapt_steps`` / ``adapt_lr`` test-time adaptation on each context's pairs (``pipeline.adaptation``).
#: ``context_copy`` keeping the query's pixels where the pairs keep their input's (``pipeline.context_copy``).
RECOMMENDED_KEYS = {
    "num_steps": "num_steps",
    "guidance_scale": "guidance_scale",
    "temperature": "temperature",
    "ensemble_size": "num_samples",
    "image_size": "processing_size",
    "max_pairs": "num_pairs",
    "adapt_steps": "adapt_steps",
    "adapt_lr": "adapt_lr",
    "context_copy": "context_copy",
}
DIT_DIR, VAE_DIR = "dit", "vae"


@attrs.frozen
class ModelFolder:
    """A model folder (see the module docstring): ``path`` holds ``dit/`` and ``vae/``."""

    name: str
    path: Path

    @property
    def dit(self) -> str:
        return str(self.path / DIT_DIR)

    @property
    def vae(self) -> str:
        return str(self.path / VAE_DIR)

    @functools.cached_property
    def index(self) -> dict[str, Any]:
        """The contents of ``model_index.json`` (empty when the folder has none), read once."""
        file = self.path / INDEX_FILE
        if not file.is_file():
            return {}
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{file} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise CheckpointError(f"{file} must hold a JSON object, got {type(data).__name__}")
        return data

    @property
    def trained_tasks(self) -> tuple[str, ...] | None:
        """The tasks the J-DiT was trained on, or None when the index does not say."""
        tasks = self.index.get("trained_tasks")
        return None if tasks is None else tuple(str(t) for t in tasks)

    @functools.cached_property
    def recommended(self) -> SamplingOptions:
        """The sampling settings the index recommends (None where it says nothing), checked once."""
        values = {option: self.index.get(key) for key, option in RECOMMENDED_KEYS.items()}
        try:
            return SamplingOptions(**values)
        except OptionError as err:
            key = next(k for k, option in RECOMMENDED_KEYS.items() if option == err.field)
            raise CheckpointError(f"{self.path / INDEX_FILE}: {key}: {err}") from None

    @property
    def precision(self) -> str | None:
        """The sampling precision the model's tables were measured at (``auto``, ``fp32`` or
        ``bf16``; see ``InContextPipeline``), or None when the index does not say."""
        value = self.index.get("precision")
        try:
            return None if value is None else check_precision(value, f"{self.path / INDEX_FILE}: precision")
        except ValueError as err:
            raise CheckpointError(str(err)) from None

    @property
    def max_pairs(self) -> int | None:
        """The most example pairs the J-DiT saw in one training context, or None when the index does not say."""
        value = self.index.get("max_pairs")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise CheckpointError(f"{self.path / INDEX_FILE}: max_pairs must be an integer >= 1, got {value!r}")
        return value

    @property
    def guidance_scale(self) -> float | None:
        """The CFG scale the model recommends, or None when the index does not say."""
        return self.recommended.guidance_scale

    @property
    def temperature(self) -> float | None:
        """The starting-noise temperature the model recommends, or None when the index does not say."""
        return self.recommended.temperature

    @property
    def ensemble_size(self) -> int | None:
        """Samples per query the model recommends combining (``Task.combine``), or None when the index does not say."""
        return self.recommended.num_samples


def shipped_path(name: str) -> Path:
    """The folder of shipped model ``name`` (it may be missing; see ``weights_present``)."""
    if name not in MODELS:
        raise UnknownNameError("model", name, MODELS)
    return WEIGHTS_DIR / MODELS[name]


def _complete(path: Path) -> bool:
    files = ("config.json", "model.safetensors")
    return all((path / part / file).is_file() for part in (DIT_DIR, VAE_DIR) for file in files)


def weights_present(name: str = DEFAULT_MODEL) -> bool:
    """Whether the weights of shipped model ``name`` are installed."""
    return _complete(shipped_path(name))


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local folder with ``dit/`` and ``vae/`` subfolders."""
    path = Path(path)
    return path.is_dir() and (path / DIT_DIR).is_dir() and (path / VAE_DIR).is_dir()


def get_model(spec: str | os.PathLike) -> ModelFolder:
    """A shipped model by name (``"lavin-tiny"``) or a model folder by path, checked to be complete."""
    spec = os.fspath(spec)
    if spec in MODELS:
        path = shipped_path(spec)
        if not _complete(path):
            raise CheckpointError(
                f"the weights of {spec!r} are not installed: {path} lacks dit/ and vae/ (config.json + "
                "model.safetensors); reinstall lavin-dit with its weights (or write them with "
                "scripts/export_shipped.py), or pass --dit and --vae checkpoints"
            )
        return ModelFolder(name=spec, path=path)
    if is_model_folder(spec):
        path = Path(spec).resolve()
        if not _complete(path):
            raise CheckpointError(f"model folder {spec} needs config.json and model.safetensors in both dit/ and vae/")
        return ModelFolder(name=path.name, path=path)
    if os.path.exists(spec):
        raise CheckpointError(f"{spec} is not a model folder (it needs dit/ and vae/ subfolders); "
                              f"pass it as --dit or --vae, or name a model: {', '.join(MODELS)}")
    raise UnknownNameError("model", spec, MODELS)


def model_part(spec: str | os.PathLike, part: str) -> str:
    """``spec`` itself, or its ``part`` (``"dit"`` or ``"vae"``) folder when ``spec`` names a model.

    ``model_part("lavin-tiny", "vae")`` is the shipped ST-VAE folder; a checkpoint path comes back as is.
    """
    if part not in (DIT_DIR, VAE_DIR):
        raise ValueError(f"part must be {DIT_DIR!r} or {VAE_DIR!r}, got {part!r}")
    spec = os.fspath(spec)
    if spec in MODELS or is_model_folder(spec):
        model = get_model(spec)
        return model.dit if part == DIT_DIR else model.vae
    return spec

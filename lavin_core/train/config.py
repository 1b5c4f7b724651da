"""Training configuration: frozen keyword-only attrs classes, loaded from TOML (or YAML).

A config file has one table per section below; every key is optional except ``[tasks]``::

    [run]        name, seed, steps, stage ("vae" or "dit"), device, log_every
    [model]      preset, vae (trained ST-VAE folder for the dit stage), init, parallel, gradient_checkpointing, compile
    [tasks]      task name = mix weight, e.g. depth = 1.0
    [task_options.NAME]  options for that task's factory, e.g. style = "drawn"
    [data]       source ("generators", "templates", "cache"), templates, caches, in_memory, image_size, min/max pairs
    [optimizer]  AdamW: lr, betas, weight_decay, eps
    [schedule]   warmup_steps, decay ("constant" or "cosine"), min_lr_ratio
    [train]      batch_size (global), precision, grad_clip, ema_decay, cfg_dropout
    [checkpoint] every, keep_last, async_save
    [samples]    every, count, num_steps, guidance_scale
    [vae]        image_steps, reconstruction ("l1" or "mse"), loss weights, adversarial_start_step,
                 discriminator_lr, train_encoder, train_only, latent_noise, denoiser, estimate_share,
                 estimate_steps

``load_config`` checks every key and type before anything runs: ``optimizer.lrr`` fails with
its key path and the keys that would work. ``dump_toml`` writes the resolved config back out.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import validators as v

from lavin_core.devices import PRECISIONS
from lavin_core.errors import LavinError
from lavin_core.train.freeze import under


class ConfigError(LavinError, ValueError):
    """A training config with an unknown key, a wrong type or a bad value; names the key path."""


_positive_int = [v.instance_of(int), v.gt(0)]
_non_negative_int = [v.instance_of(int), v.ge(0)]


def _finite(instance: object, attribute: attrs.Attribute, value: float) -> None:
    # v.gt / v.ge let inf through (and nan where the bound is not tested): a learning rate of inf trains to NaN
    if not math.isfinite(value):
        raise ValueError(f"'{attribute.name}' must be a finite number, got {value}")


_positive_float = [_finite, v.gt(0.0)]
_non_negative_float = [_finite, v.ge(0.0)]


def _probability(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must lie in [0, 1), got {value}")


def _compile_choice(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bool) and value != "auto":
        raise ValueError(f'{attribute.name} must be true, false or "auto", got {value!r}')


def _betas(instance: object, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0.0 <= beta < 1.0 for beta in value):
        raise ValueError(f"betas must both lie in [0, 1) (AdamW's decay rates), got {list(value)}")


@attrs.frozen(kw_only=True)
class RunConfig:
    name: str = "lavin"
    seed: int = attrs.field(default=0, validator=_non_negative_int)
    #: Optimizer steps of the whole run.
    steps: int = attrs.field(default=1000, validator=_positive_int)
    stage: Literal["vae", "dit"] = attrs.field(default="dit", validator=v.in_(("vae", "dit")))
    #: ``auto`` is CUDA when available (each rank on its ``LOCAL_RANK`` device), else the CPU.
    device: Literal["auto", "cpu", "cuda"] = attrs.field(default="auto", validator=v.in_(("auto", "cpu", "cuda")))
    log_every: int = attrs.field(default=10, validator=_positive_int)


@attrs.frozen(kw_only=True)
class ModelConfig:
    #: A J-DiT preset (``lavin-tiny`` ... ``lavin-3.4b``) or, for the vae stage, an ST-VAE preset.
    preset: str = "lavin-tiny"
    #: dit stage: folder (or fsspec URL) of a trained ST-VAE (``save_pretrained``), the frozen
    #: encoder; or a model (``"lavin-tiny"``, a model folder), whose ST-VAE is used.
    vae: str = ""
    #: Weights to start from instead of a random initialisation (fine-tuning): a ``save_pretrained``
    #: folder or fsspec URL (e.g. an earlier run's ``RUN_DIR/export``), or a model such as
    #: ``"lavin-tiny"`` (its J-DiT or ST-VAE, by stage). Their config must equal the preset's.
    #: ``--resume`` continues a run; ``init`` starts a new one from these weights.
    init: str = ""
    #: ``auto``: FSDP2 for models over a billion parameters when there are several ranks, else DDP.
    parallel: Literal["auto", "ddp", "fsdp"] = attrs.field(default="auto", validator=v.in_(("auto", "ddp", "fsdp")))
    #: Activation checkpointing of every repeated block (transformer blocks), applied from outside
    #: the model by ``lavin_core.train.parallelize``: recomputed in backward instead of kept.
    gradient_checkpointing: bool = False
    #: Regional ``torch.compile``: each repeated block compiled on its own (after checkpointing,
    #: before FSDP2; ``lavin_core.train.parallelize.ORDER``). ``"auto"``: the J-DiT's blocks when the
    #: run is long enough to repay the compile time (``lavin_core.train.compile``; a short test run
    #: stays eager, the vae stage too); ``true`` / ``false`` force it. Logged as ``compile_s``.
    compile: bool | Literal["auto"] = attrs.field(default="auto", validator=_compile_choice)


def _module_paths(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for path in value:
        if not isinstance(path, str) or not path or any(not part.isidentifier() and not part.isdigit()
                                                        for part in path.split(".")):
            raise ValueError(f"vae.{attribute.name} holds {path!r}, which is not a module path; "
                             'name parts of the model by their dotted paths, e.g. ["decoder.copy"]')


def _check_tasks(instance: object, attribute: attrs.Attribute, tasks: Mapping[str, float]) -> None:
    if not tasks:
        raise ValueError("[tasks] is empty; name at least one task with its mix weight, e.g. depth = 1.0")
    for name, weight in tasks.items():
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"tasks.{name}: mix weight must be positive (and finite), got {weight}")


@attrs.frozen(kw_only=True)
class DataConfig:
    source: Literal["generators", "templates", "cache"] = attrs.field(
        default="generators", validator=v.in_(("generators", "templates", "cache"))
    )
    #: Template folders of ``NAME_input.png`` / ``NAME_target.png`` pairs (source = "templates").
    templates: tuple[str, ...] = ()
    #: Zarr latent cache URLs (source = "cache"), one task each (``lavin cache build``).
    caches: tuple[str, ...] = ()
    #: Read each cache into memory once at start (``ZarrLatentCache.load``) instead of one example at a
    #: time from the store: for caches that fit in RAM (the lavin-tiny-icl caches: 0.7 GB).
    in_memory: bool = False
    #: Pixel height and width of generated examples.
    image_size: int = attrs.field(default=64, validator=_positive_int)
    #: Example pairs per context, drawn uniformly per step (the authors trained with 1 to 8).
    min_pairs: int = attrs.field(default=1, validator=_positive_int)
    max_pairs: int = attrs.field(default=8, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.min_pairs > self.max_pairs:
            raise ValueError(f"min_pairs {self.min_pairs} is larger than max_pairs {self.max_pairs}")
        if self.source == "templates" and not self.templates:
            raise ValueError('source = "templates" needs templates = ["folder", ...]')
        if self.source == "cache" and not self.caches:
            raise ValueError('source = "cache" needs caches = ["URL of a Zarr latent cache", ...]')


@attrs.frozen(kw_only=True)
class OptimizerConfig:
    """AdamW; the authors trained with lr 1e-4."""

    lr: float = attrs.field(default=1e-4, validator=_positive_float)
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.999), validator=_betas)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative_float)
    eps: float = attrs.field(default=1e-8, validator=_positive_float)


@attrs.frozen(kw_only=True)
class ScheduleConfig:
    """Linear warm-up from 0, then the learning rate stays (constant) or decays to ``min_lr_ratio * lr`` (cosine)."""

    warmup_steps: int = attrs.field(default=0, validator=_non_negative_int)
    decay: Literal["constant", "cosine"] = attrs.field(default="constant", validator=v.in_(("constant", "cosine")))
    min_lr_ratio: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])


@attrs.frozen(kw_only=True)
class TrainingConfig:
    #: Samples per optimizer step over all ranks; must divide by the number of ranks.
    batch_size: int = attrs.field(default=8, validator=_positive_int)
    #: ``auto``: bf16 autocast on CUDA, float32 on the CPU.
    precision: Literal["auto", "fp32", "bf16"] = attrs.field(default="auto", validator=v.in_(PRECISIONS))
    #: Clip the global gradient norm to this; 0 turns clipping off.
    grad_clip: float = attrs.field(default=1.0, validator=_non_negative_float)
    ema_decay: float = attrs.field(default=0.9999, validator=_probability)
    #: Probability that a context loses its example pairs (the null context ``[0, query]``).
    cfg_dropout: float = attrs.field(default=0.1, validator=_probability)


@attrs.frozen(kw_only=True)
class CheckpointConfig:
    every: int = attrs.field(default=500, validator=_positive_int)
    keep_last: int = attrs.field(default=3, validator=_positive_int)
    #: Write the sharded checkpoint in a background thread from a CPU copy while training goes on
    #: (``torch.distributed.checkpoint.async_save``); it is committed (renamed into place) once
    #: complete, at the next checkpoint or the end. Costs one more copy of the state in CPU memory.
    async_save: bool = False


@attrs.frozen(kw_only=True)
class SamplesConfig:
    """Sample grids written to ``RUN_DIR/samples/``; every = 0 turns them off.

    dit stage: context | prediction | ground truth per row (``num_steps`` Euler steps, CFG
    ``guidance_scale``); vae stage: original | reconstruction.
    """

    every: int = attrs.field(default=500, validator=_non_negative_int)
    count: int = attrs.field(default=4, validator=_positive_int)
    num_steps: int = attrs.field(default=19, validator=_positive_int)
    guidance_scale: float = attrs.field(default=1.5, validator=_non_negative_float)


@attrs.frozen(kw_only=True)
class VAEStageConfig:
    """ST-VAE training: ``image_steps`` on single frames, then images and clips jointly (the paper's order).

    The loss is ``reconstruction (L1) + kl_weight KL + perceptual_weight perceptual`` plus, from
    ``adversarial_start_step``, ``adversarial_weight`` times a hinge GAN loss against a patch
    discriminator with its own AdamW (``discriminator_lr``).
    """

    image_steps: int = attrs.field(default=0, validator=_non_negative_int)
    #: The reconstruction term: ``"l1"`` (sharper autoencoders) or ``"mse"`` (what PSNR scores;
    #: e.g. for a copy gate, a per-pixel blend whose best value under MSE is the PSNR-best one).
    reconstruction: Literal["l1", "mse"] = attrs.field(default="l1", validator=v.in_(("l1", "mse")))
    kl_weight: float = attrs.field(default=1e-6, validator=_non_negative_float)
    perceptual_weight: float = attrs.field(default=0.1, validator=_non_negative_float)
    adversarial_weight: float = attrs.field(default=0.05, validator=_non_negative_float)
    adversarial_start_step: int = attrs.field(default=5000, validator=_non_negative_int)
    discriminator_lr: float = attrs.field(default=1e-4, validator=_positive_float)
    #: ``false`` freezes the encoder and trains the decoder alone (with ``model.init``): the
    #: latents stay exactly the same, so J-DiT weights and latent caches made with the old
    #: encoder stay valid while reconstructions improve (like Stability's ft-MSE decoders).
    train_encoder: bool = True
    #: Parameter-name prefixes (module paths, e.g. ``["decoder.copy"]``): when set, only the
    #: parameters under them train and every other one is frozen (the encoder too, unless named),
    #: as torchtitan and diffusers fine-tune one part of a model. Empty (the default): every
    #: parameter ``train_encoder`` leaves trainable.
    train_only: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_module_paths)
    #: Noise added to the latents before decoding, up to this fraction of their RMS per sample
    #: (``lavin_core.stvae.latent_noise``): a decoder for a J-DiT's estimates rather than for
    #: clean latents. 0 (the default) decodes the posterior sample as it is.
    latent_noise: float = attrs.field(default=0.0, validator=[_finite, v.ge(0.0), v.le(1.0)])
    #: A trained J-DiT (model name or folder, or J-DiT checkpoint) whose sampled answers the
    #: decoder learns to decode into the true targets on ``estimate_share`` of the steps
    #: (``lavin_core.train.estimates``); its contexts hold ``data.min_pairs`` to ``max_pairs``
    #: pairs, its samples take ``estimate_steps`` Euler steps. Needs the encoder frozen, and one
    #: process or DDP (the estimates are encoded outside the wrapper, which FSDP2 shards). "" = none.
    denoiser: str = ""
    estimate_share: float = attrs.field(default=0.5, validator=[_finite, v.ge(0.0), v.le(1.0)])
    estimate_steps: int = attrs.field(default=10, validator=_positive_int)

    @property
    def encoder_frozen(self) -> bool:
        """Whether the encoder stays as it starts: ``train_encoder = false``, or a ``train_only`` that does not name it."""
        return not self.train_encoder or bool(self.train_only) and not any(
            under(prefix, "encoder") for prefix in self.train_only)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """A whole training run."""

    tasks: dict[str, float] = attrs.field(validator=_check_tasks)
    #: Options per task for its factory (``[task_options.depth] style = "drawn"``), as ``--task-option``.
    task_options: dict[str, dict[str, bool | int | float | str]] = attrs.field(factory=dict)
    run: RunConfig = RunConfig()
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainingConfig = TrainingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    samples: SamplesConfig = SamplesConfig()
    vae: VAEStageConfig = VAEStageConfig()

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.task_options) - set(self.tasks))
        if unknown:
            raise ValueError(f"task_options names {', '.join(unknown)}, which [tasks] does not list")
        if self.run.stage == "vae" and self.vae.encoder_frozen and not self.model.init:
            what = "vae.train_encoder = false" if not self.vae.train_encoder else f"vae.train_only = {list(self.vae.train_only)}"
            raise ValueError(f"{what} keeps the encoder as it starts: set model.init to "
                             "the trained ST-VAE whose encoder to keep (e.g. runs/lavin-tiny-vae/export)")
        if self.run.stage == "vae" and self.vae.denoiser and not self.vae.encoder_frozen:
            raise ValueError(f"vae.denoiser = {self.vae.denoiser!r} reads and writes the latents of the encoder it "
                             "was trained on: set vae.train_encoder = false (and model.init to that ST-VAE)")


# ---------------------------------------------------------------------------------------------
# dict -> attrs, checking every key and type


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if attrs.has(tp):
        return "a table"
    return getattr(tp, "__name__", None) or str(tp)


def _convert(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``; ``ConfigError`` names ``path``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if attrs.has(tp):
        return from_dict(tp, value, path=path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be {_type_name(tp)}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        for arg in args:
            try:
                return _convert(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], f"{path}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_convert(item, arg, f"{path}[{i}]") for i, (item, arg) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        key_type, value_type = args
        return {_convert(k, key_type, path): _convert(item, value_type, f"{path}.{k}") for k, item in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"{path}: no conversion for annotation {tp!r}")  # a bug in the config classes


def from_dict(cls: type, data: Any, *, path: str = "") -> Any:
    """The attrs config ``cls`` built from nested dicts; unknown keys and wrong types raise ``ConfigError``."""
    where = path or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{path + '.' if path else ''}{key}: unknown key; {hint}known keys: {', '.join(fields)}")
    values = {key: _convert(value, hints[key], f"{path + '.' if path else ''}{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as err:  # a missing required section
        raise ConfigError(f"{where}: {err}") from None
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.lr=3e-4"`` -> (["optimizer", "lr"], 3e-4); a value that is not TOML is a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optimizer.lr=3e-4")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of the raw config ``data`` with each ``KEY=VALUE`` of ``overrides`` set."""
    result = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for text in overrides:
        keys, value = _parse_override(text)
        table = result
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {text!r}: {key} is not a table")
        table[keys[-1]] = value
    return result


def read_file(path: str | Path) -> dict[str, Any]:
    """The raw nested dict of a ``.toml`` (or, with PyYAML installed, ``.yaml``) config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml); or write it as TOML") from None
        data = yaml.safe_load(path.read_text()) or {}
    else:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of sections at the top level")
    return data


#: Keys whose values are local paths (or URLs, or model names): the relative paths among them
#: resolve against the folder of the config file, or the current folder for ``--set`` values.
PATH_KEYS = (("model", "vae"), ("model", "init"), ("data", "templates"), ("data", "caches"))
#: The rule, for error messages.
PATH_RULE = ("relative paths in a config file resolve against the file's folder, "
             "those given with --set against the current folder")


def _is_local_path(value: str) -> bool:
    from lavin_core.pretrained.folders import MODELS

    return bool(value) and "://" not in value and value not in MODELS and not value.startswith("random:")


def resolve_path(value: Any, base: Path) -> Any:
    """``value`` with a relative local path made absolute against ``base``; URLs and model names as they are."""
    if not isinstance(value, str) or not _is_local_path(value) or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(os.path.abspath(base), os.path.expanduser(value)))


def _resolve_paths(data: dict[str, Any], base: Path, *, source: str) -> dict[str, Any]:
    """A copy of raw config ``data`` with the ``PATH_KEYS`` resolved against ``base``.

    A path that exists only relative to the current folder (the usual slip: a config written to be
    run from elsewhere) is a ``ConfigError`` that says how it was resolved.
    """
    result = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for section, key in PATH_KEYS:
        table = result.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        value = table[key]
        values = value if isinstance(value, list) else [value]
        resolved = [resolve_path(item, base) for item in values]
        for item, where in zip(values, resolved):
            if item != where and not os.path.exists(where) and os.path.exists(item):
                raise ConfigError(
                    f"{section}.{key} = {item!r} in {source} resolves to {where}, which does not exist ({PATH_RULE}); "
                    f"{item} exists relative to the current folder: write {os.path.relpath(os.path.abspath(item), base)!r} "
                    "or an absolute path"
                )
        table[key] = resolved if isinstance(value, list) else resolved[0]
    return result


def check_local_path(key: str, value: str, what: str) -> None:
    """``ConfigError`` if ``value`` of config key ``key`` is a local path where nothing exists."""
    if _is_local_path(value) and not os.path.exists(value):
        raise ConfigError(f"{key}: no {what} at {value} ({PATH_RULE})")


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """The ``TrainConfig`` of a config file with ``--set``-style ``overrides`` applied.

    Paths (``PATH_KEYS``) come back absolute: relative ones in the file against its folder, those
    of ``overrides`` against the current folder; the saved ``config.toml`` of a run therefore
    works from anywhere.
    """
    path = Path(path)
    data = _resolve_paths(read_file(path), path.parent, source=str(path))
    given = _resolve_paths(apply_overrides({}, list(overrides)), Path.cwd(), source="--set")
    merged = apply_overrides(data, list(overrides))
    for section, key in PATH_KEYS:
        if key in given.get(section, {}):
            merged[section][key] = given[section][key]
    return from_dict(TrainConfig, merged)


# ---------------------------------------------------------------------------------------------
# attrs -> TOML (tomllib only reads)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):  # an inline table: task_options' per-task options
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_value(key)


def dump_toml(config: TrainConfig) -> str:
    """The TOML text of ``config``; ``load_config`` reads it back to an equal config."""
    lines = []
    for name, section in attrs.asdict(config, recurse=True).items():
        lines.append(f"[{name}]")
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in section.items())
        lines.append("")
    return "\n".join(lines)

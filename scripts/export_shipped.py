"""Turn two ``lavin train`` exports into a shipped model folder in half precision.

    python scripts/export_shipped.py runs/lavin-tiny-dit/export runs/lavin-tiny-vae/export
    python scripts/export_shipped.py DIT_EXPORT VAE_EXPORT --out lavin_core/weights/lavin-tiny --dtype float16
    python scripts/export_shipped.py --replace-vae VAE_EXPORT --out lavin_core/weights/lavin-tiny-icl

Writes ``OUT/dit/`` and ``OUT/vae/`` (``config.json`` + ``model.safetensors``, floating-point
tensors cast to ``--dtype``) and ``OUT/model_index.json`` with the tasks, image size and pair
counts of the J-DiT's training config (read from ``config.toml`` beside each export, which
``lavin train`` writes into the run folder). Refuses tensors that overflow the half-precision
type, and a folder over ``--max-mb``. ``--replace-vae`` swaps the ST-VAE of a model folder that is
already there (a decoder fine-tuned on a frozen encoder) and keeps its J-DiT and its index, but
for the ST-VAE's training record; it refuses an ST-VAE whose encoder differs from the old one's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from pathlib import Path

import safetensors.torch
import torch

from lavin_core.checkpoint import read_safetensors
from lavin_core.devices import PRECISIONS
from lavin_core.pretrained.folders import DIT_DIR, INDEX_FILE, VAE_DIR, WEIGHTS_DIR

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def half_tensors(tensors: dict[str, torch.Tensor], dtype: torch.dtype, source: str) -> dict[str, torch.Tensor]:
    """Floating-point tensors cast to ``dtype`` (others kept), refusing values that become inf."""
    out = {}
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            cast = tensor.to(dtype)
            if not torch.isfinite(cast).all() and torch.isfinite(tensor).all():
                raise SystemExit(f"{source}: tensor {name} overflows {dtype}; use --dtype bfloat16")
            tensor = cast
        out[name] = tensor.contiguous()
    return out


def training_config(export: Path) -> dict:
    """The ``config.toml`` of the run that wrote ``export`` (``{}`` when it is not there)."""
    path = export.parent / "config.toml"
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def check_export(export: Path) -> None:
    """Refuse, in one line, a folder that is not a finished run's ``save_pretrained`` export."""
    for file in ("config.json", "model.safetensors"):
        if not (export / file).is_file():
            raise SystemExit(f"{export} has no {file}; pass the export folder of a finished `lavin train` run")


def export_part(export: Path, out: Path, dtype: torch.dtype) -> int:
    """Copy one ``save_pretrained`` folder into ``out`` with half-precision weights; returns bytes written."""
    check_export(export)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(export / "config.json", out / "config.json")
    tensors = half_tensors(read_safetensors(str(export / "model.safetensors")), dtype, str(export))
    safetensors.torch.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return (out / "model.safetensors").stat().st_size + (out / "config.json").stat().st_size


#: The repository root: a training record's paths inside it are written relative to it.
REPO = Path(__file__).resolve().parents[1]


def portable(model: dict) -> dict:
    """A run's ``[model]`` table with ``init``, when it is a path inside this repository, relative to
    its root: the record names the run folder, not the machine it ran on."""
    init = model.get("init")
    if isinstance(init, str) and Path(init).is_absolute() and Path(init).resolve().is_relative_to(REPO):
        return {**model, "init": Path(init).resolve().relative_to(REPO).as_posix()}
    return model


def vae_training(export: Path) -> dict:
    """The index's record of the ST-VAE run that wrote ``export``; for the ST-VAE part of a model folder
    of this script (``lavin_core/weights/lavin-tiny-icl/vae``), the record in that folder's index."""
    config = training_config(export)
    index = export.parent / INDEX_FILE
    if not config and index.is_file():
        record = json.loads(index.read_text()).get("vae_training")
        if record:
            return record
    return {"run": config.get("run", {}), "model": portable(config.get("model", {})), "vae": config.get("vae", {}),
            "tasks": list(config.get("tasks", {}))}


def replace_vae(export: Path, out: Path, max_mb: float) -> int:
    """Swap ``out``'s ST-VAE for ``export``, keep the rest; in the folder's own weight dtype, where the
    new encoder must be bit-identical to the old one."""
    index_path = out / INDEX_FILE
    if not index_path.is_file():
        raise SystemExit(f"{out} has no {INDEX_FILE}; --replace-vae needs a model folder written by this script")
    check_export(export)
    index = json.loads(index_path.read_text())
    old_weights = out / index["vae"] / "model.safetensors"
    if not old_weights.is_file() or index.get("weights_dtype") not in DTYPES:
        raise SystemExit(f"{out} is not a complete model folder of this script (no {old_weights}, or weights_dtype "
                         f"{index.get('weights_dtype')!r} not one of {', '.join(sorted(DTYPES))})")
    dtype = DTYPES[index["weights_dtype"]]
    old = read_safetensors(str(old_weights))
    new = half_tensors(read_safetensors(str(export / "model.safetensors")), dtype, str(export))
    changed = sorted(name for name, tensor in old.items()
                     if name.startswith("encoder.") and not torch.equal(tensor, new.get(name, tensor[:0])))
    if changed:
        raise SystemExit(f"{export}: its encoder differs from {out}'s ({changed[0]} and {len(changed) - 1} more); "
                         "the J-DiT was trained on the old latents, so only a decoder may change")
    current = out / index["vae"]
    staging, retired = current.with_name(current.name + ".new"), current.with_name(current.name + ".old")
    for leftover in (staging, retired):  # from an earlier run that was killed half-way
        shutil.rmtree(leftover, ignore_errors=True)
    export_part(export, staging, dtype)
    current.rename(retired)  # a kill from here on leaves both parts beside the folder, never neither
    staging.rename(current)
    shutil.rmtree(retired)
    index["vae_training"] = vae_training(export)
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    megabytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    if megabytes > max_mb:
        raise SystemExit(f"{out} holds {megabytes:.1f} MB, over --max-mb {max_mb}")
    print(f"replaced the ST-VAE of {out} with {export} ({megabytes:.1f} MB in all)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dit_export", type=Path, nargs="?", help="RUN/export of the J-DiT run")
    parser.add_argument("vae_export", type=Path, nargs="?", help="RUN/export of the ST-VAE run")
    parser.add_argument("--replace-vae", type=Path, metavar="VAE_EXPORT",
                        help="replace only the ST-VAE of the model folder --out (same encoder), keeping its J-DiT "
                             "and its weight dtype")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "lavin-tiny", help="model folder to write")
    parser.add_argument("--name", default="lavin-tiny", help="model name recorded in the index")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16", help="weight dtype (default: float16)")
    parser.add_argument("--guidance-scale", type=float, metavar="S",
                        help="the CFG scale this model recommends (chosen on a validation seed); the "
                             "pipeline's default for it (default: none recorded, so the official 1.5)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="the starting-noise temperature this model recommends (chosen on a validation "
                             "seed); the pipeline's default for it (default: none recorded, so 1)")
    parser.add_argument("--ensemble-size", type=int, metavar="K",
                        help="samples per query the model recommends combining in demo and bench (chosen on a "
                             "validation seed) (default: none recorded, so 1)")
    parser.add_argument("--num-steps", type=int, metavar="N",
                        help="sampler steps this model recommends (its quality measured there on a validation "
                             "seed) (default: none recorded, so the sampler's own, 19 for Euler)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="the J-DiT's sampling precision this model's tables were measured at (auto: bf16 "
                             "where the device has native bf16 matmuls) (default: none recorded, so fp32)")
    parser.add_argument("--max-mb", type=float, default=40.0, help="refuse a bigger folder (default: 40)")
    args = parser.parse_args(argv)

    if args.guidance_scale is not None and args.guidance_scale < 0:
        raise SystemExit(f"--guidance-scale must be >= 0, got {args.guidance_scale}")
    if args.temperature is not None and args.temperature < 0:
        raise SystemExit(f"--temperature must be >= 0, got {args.temperature}")
    if args.ensemble_size is not None and args.ensemble_size < 1:
        raise SystemExit(f"--ensemble-size must be at least 1, got {args.ensemble_size}")
    if args.num_steps is not None and args.num_steps < 1:
        raise SystemExit(f"--num-steps must be at least 1, got {args.num_steps}")
    dtype = DTYPES[args.dtype]
    if args.replace_vae is not None:
        if args.dit_export is not None or args.vae_export is not None:
            raise SystemExit("--replace-vae takes the ST-VAE export alone: drop DIT_EXPORT and VAE_EXPORT")
        return replace_vae(args.replace_vae, args.out, args.max_mb)
    if args.dit_export is None or args.vae_export is None:
        raise SystemExit("pass DIT_EXPORT and VAE_EXPORT (two `lavin train` export folders), or --replace-vae VAE_EXPORT")
    size = export_part(args.dit_export, args.out / DIT_DIR, dtype)
    size += export_part(args.vae_export, args.out / VAE_DIR, dtype)
    dit_config = training_config(args.dit_export)
    data = dit_config.get("data", {})
    index = {
        "name": args.name,
        "dit": DIT_DIR,
        "vae": VAE_DIR,
        "weights_dtype": args.dtype,
        "trained_tasks": list(dit_config.get("tasks", {})) or None,
        "image_size": data.get("image_size", 64),
        "min_pairs": data.get("min_pairs"),
        "max_pairs": data.get("max_pairs"),
        **({} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}),
        **({} if args.temperature is None else {"temperature": args.temperature}),
        **({} if args.ensemble_size is None else {"ensemble_size": args.ensemble_size}),
        **({} if args.num_steps is None else {"num_steps": args.num_steps}),
        **({} if args.precision is None else {"precision": args.precision}),
        "dit_training": {"run": dit_config.get("run", {}), "model": portable(dit_config.get("model", {}))},
        "vae_training": vae_training(args.vae_export),
    }
    (args.out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    megabytes = size / 2**20
    if megabytes > args.max_mb:
        raise SystemExit(f"{args.out} holds {megabytes:.1f} MB, over --max-mb {args.max_mb}")
    print(f"wrote {args.out} ({megabytes:.1f} MB, {args.dtype}); trained tasks: "
          f"{', '.join(index['trained_tasks'] or ['unknown (no config.toml beside the J-DiT export)'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

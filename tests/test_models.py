"""Named shipped models, model folders, and scripts/export_shipped.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.pretrained import folders
from lavin_core.cli import main
from lavin_core.errors import CheckpointError, UnknownNameError
from lavin_core.pipeline import load_denoiser, load_encoder, load_pipeline
from lavin_core.samplers.options import SamplingOptions
from tests.script_module import load_script
from tests.tiny_model import make_model_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def no_weights(tmp_path, monkeypatch) -> Path:
    """The package's weights folder pointed at an empty folder (a checkout without weights)."""
    monkeypatch.setattr(folders, "WEIGHTS_DIR", tmp_path / "weights")
    return tmp_path / "weights" / "lavin-tiny"


def _export_script():
    return load_script("export_shipped")


def _exports(tmp_path: Path, folder: Path) -> dict[str, Path]:
    """``{"dit": ..., "vae": ...}``: the model folder's parts as two `lavin train` export folders."""
    runs = {}
    for part in ("dit", "vae"):
        export = tmp_path / f"{part}-run" / "export"
        export.mkdir(parents=True)
        for file in ("config.json", "model.safetensors"):
            (export / file).write_bytes((folder / part / file).read_bytes())
        runs[part] = export
    return runs


def test_lavin_tiny_lives_in_the_package():
    assert folders.DEFAULT_MODEL == "lavin-tiny"
    assert folders.shipped_path("lavin-tiny") == folders.WEIGHTS_DIR / "lavin-tiny"


def test_unknown_name_lists_the_models():
    with pytest.raises(UnknownNameError, match="lavin-tiny"):
        folders.get_model("lavin-tiny2")
    with pytest.raises(UnknownNameError, match="unknown model 'nope'"):
        load_pipeline("nope")


def test_missing_weights_error_names_the_path(no_weights):
    assert not folders.weights_present("lavin-tiny")
    for call in (lambda: folders.get_model("lavin-tiny"), lambda: load_pipeline(), lambda: load_pipeline("lavin-tiny"),
                 lambda: load_denoiser("lavin-tiny")):
        with pytest.raises(CheckpointError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(no_weights) in message and "not installed" in message


def test_lavin_run_without_weights_is_one_line(no_weights, tmp_path, capsys):
    from PIL import Image

    Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy()).save(tmp_path / "q.png")
    status = main(["run", "--task", "depth", "--query", str(tmp_path / "q.png"), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and str(no_weights) in err


def test_named_model_loads_from_the_weights_dir(folder, monkeypatch):
    weights = folder.parent
    monkeypatch.setattr(folders, "WEIGHTS_DIR", weights)
    monkeypatch.setitem(folders.MODELS, "lavin-tiny", folder.name)
    assert folders.weights_present()
    assert folders.get_model("lavin-tiny").trained_tasks == ("depth", "edges")
    pipe = load_pipeline()  # the default model
    assert pipe.dtype == torch.float32
    saved = safetensors.torch.load_file(str(folder / "dit" / "model.safetensors"))
    for name, tensor in pipe.denoiser.state_dict().items():
        if tensor.is_floating_point():
            assert saved[name].dtype == torch.float16
            torch.testing.assert_close(tensor, saved[name].float(), rtol=0, atol=0)


def test_model_folder_by_path_and_parts(folder):
    pipe = load_pipeline(folder)
    same = load_pipeline(model=str(folder))
    assert isinstance(pipe.encoder, type(load_encoder(folder)))
    for a, b in zip(pipe.denoiser.parameters(), same.denoiser.parameters()):
        assert torch.equal(a, b)
    # dit= replaces the model's J-DiT only
    mixed = load_pipeline(folder, dit="random:lavin-tiny", seed=3)
    assert not torch.equal(next(mixed.denoiser.parameters()), next(pipe.denoiser.parameters()))
    assert torch.equal(next(mixed.encoder.parameters()), next(pipe.encoder.parameters()))


def test_half_given_checkpoints_need_a_model():
    with pytest.raises(ValueError, match="vae= is missing"):
        load_pipeline(dit="random:lavin-tiny")


def test_a_checkpoint_folder_is_not_a_model_folder(tmp_path):
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="not a model folder"):
        folders.get_model(tmp_path / "ckpt")


@settings(max_examples=10, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31))
def test_half_tensors_rounds_like_the_dtype(scale, seed):
    script = _export_script()
    tensor = torch.randn(17, generator=torch.Generator().manual_seed(seed)) * scale
    out = script.half_tensors({"w": tensor, "i": torch.arange(3)}, torch.float16, "x")
    assert out["w"].dtype == torch.float16 and out["i"].dtype == torch.int64
    diff = (out["w"].float() - tensor).norm() / tensor.norm()
    assert diff < 1e-3


def test_half_tensors_refuses_overflow():
    with pytest.raises(SystemExit, match="bfloat16"):
        _export_script().half_tensors({"w": torch.tensor([1e6, 1.0])}, torch.float16, "x")


def test_export_shipped_writes_a_loadable_folder(tmp_path, folder):
    runs = _exports(tmp_path, folder)
    (runs["dit"].parent / "config.toml").write_text(
        '[run]\nname = "d"\nstage = "dit"\n[tasks]\ndepth = 1.0\npose = 0.5\n[data]\nimage_size = 64\nmax_pairs = 4\n')
    out = tmp_path / "shipped"
    assert _export_script().main([str(runs["dit"]), str(runs["vae"]), "--out", str(out), "--dtype", "bfloat16",
                                  "--guidance-scale", "2.5", "--temperature", "0.5", "--ensemble-size", "4",
                                  "--num-steps", "7"]) == 0
    index = json.loads((out / folders.INDEX_FILE).read_text())
    assert index["trained_tasks"] == ["depth", "pose"] and index["image_size"] == 64
    assert index["guidance_scale"] == 2.5 and index["temperature"] == 0.5 and index["ensemble_size"] == 4
    assert index["num_steps"] == 7
    assert folders.get_model(out).ensemble_size == 4
    assert folders.get_model(out).trained_tasks == ("depth", "pose")
    tensors = safetensors.torch.load_file(str(out / "vae" / "model.safetensors"))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.bfloat16}
    pipe = load_pipeline(out)
    assert pipe.dtype == torch.float32
    # the recommended CFG scale, temperature and steps are the pipeline's defaults, unless a part is replaced
    assert (pipe.guidance_scale, pipe.temperature, pipe.defaults.num_steps) == (2.5, 0.5, 7)
    assert pipe.resolve(SamplingOptions()).num_steps == 7 and pipe.resolve(SamplingOptions(num_steps=3)).num_steps == 3
    replaced = load_pipeline(out, dit="random:lavin-tiny")
    assert (replaced.guidance_scale, replaced.temperature, replaced.defaults.num_steps) == (1.5, 1.0, None)
    index["guidance_scale"] = "high"
    (out / folders.INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model_index.json: guidance_scale: the guidance scale must be a finite number >= 0 .*got 'high'"):
        load_pipeline(out)
    with pytest.raises(SystemExit, match="--guidance-scale must be >= 0"):
        _export_script().main([str(runs["dit"]), str(runs["vae"]), "--out", str(out), "--guidance-scale", "-1"])
    with pytest.raises(SystemExit, match="--temperature must be >= 0"):
        _export_script().main([str(runs["dit"]), str(runs["vae"]), "--out", str(out), "--temperature", "-1"])
    index["guidance_scale"], index["temperature"] = 2.0, True
    (out / folders.INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model_index.json: temperature: the temperature must be a finite number >= 0 .*got True"):
        load_pipeline(out)
    index["temperature"], index["ensemble_size"] = 0.5, 2.5
    (out / folders.INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model_index.json: ensemble_size: the number of samples per query must be an integer >= 1, got 2.5"):
        _ = folders.get_model(out).ensemble_size
    with pytest.raises(SystemExit, match="--ensemble-size must be at least 1"):
        _export_script().main([str(runs["dit"]), str(runs["vae"]), "--out", str(out), "--ensemble-size", "0"])
    index["ensemble_size"], index["num_steps"] = 4, 0
    (out / folders.INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model_index.json: num_steps: the number of steps must be an integer >= 1, got 0"):
        load_pipeline(out)
    with pytest.raises(SystemExit, match="--num-steps must be at least 1"):
        _export_script().main([str(runs["dit"]), str(runs["vae"]), "--out", str(out), "--num-steps", "0"])


def test_export_shipped_replaces_a_decoder_and_refuses_a_new_encoder(tmp_path, folder):
    script = _export_script()
    out = tmp_path / "shipped"
    runs = _exports(tmp_path, folder)
    assert script.main([str(runs["dit"]), str(runs["vae"]), "--out", str(out)]) == 0
    dit_before = (out / "dit" / "model.safetensors").read_bytes()
    tensors = safetensors.torch.load_file(str(runs["vae"] / "model.safetensors"))
    decoder = tmp_path / "decoder-run" / "export"
    decoder.mkdir(parents=True)
    (decoder / "config.json").write_bytes((runs["vae"] / "config.json").read_bytes())
    (decoder.parent / "config.toml").write_text('[run]\nname = "dec"\nstage = "vae"\n[tasks]\nmap_flip = 1.0\n'
                                                '[vae]\nlatent_noise = 0.2\n')
    moved = {k: (v + 1 if k.startswith("decoder.") and v.is_floating_point() else v) for k, v in tensors.items()}
    safetensors.torch.save_file(moved, str(decoder / "model.safetensors"))
    assert script.main(["--replace-vae", str(decoder), "--out", str(out)]) == 0
    index = json.loads((out / folders.INDEX_FILE).read_text())
    assert index["vae_training"] == {"run": {"name": "dec", "stage": "vae"}, "model": {}, "vae": {"latent_noise": 0.2},
                                     "tasks": ["map_flip"]}
    assert (out / "dit" / "model.safetensors").read_bytes() == dit_before
    shipped = safetensors.torch.load_file(str(out / "vae" / "model.safetensors"))
    name = next(k for k in moved if k.startswith("decoder.") and moved[k].is_floating_point())
    assert torch.equal(shipped[name], moved[name].half())
    moved = {k: (v + 1 if k.startswith("encoder.") and v.is_floating_point() else v) for k, v in tensors.items()}
    safetensors.torch.save_file(moved, str(decoder / "model.safetensors"))
    with pytest.raises(SystemExit, match="its encoder differs"):
        script.main(["--replace-vae", str(decoder), "--out", str(out)])
    assert torch.equal(safetensors.torch.load_file(str(out / "vae" / "model.safetensors"))[name], shipped[name])
    bf16 = tmp_path / "shipped-bf16"  # the folder keeps its own weight dtype, whatever --dtype says
    moved = {k: (v + 1 if k.startswith("decoder.") and v.is_floating_point() else v) for k, v in tensors.items()}
    safetensors.torch.save_file(moved, str(decoder / "model.safetensors"))
    assert script.main([str(runs["dit"]), str(runs["vae"]), "--out", str(bf16), "--dtype", "bfloat16"]) == 0
    assert script.main(["--replace-vae", str(decoder), "--out", str(bf16)]) == 0
    assert safetensors.torch.load_file(str(bf16 / "vae" / "model.safetensors"))[name].dtype == torch.bfloat16
    with pytest.raises(SystemExit, match="nowhere has no config.json"):
        script.main(["--replace-vae", str(tmp_path / "nowhere"), "--out", str(out)])
    with pytest.raises(SystemExit, match="has no model_index.json"):
        script.main(["--replace-vae", str(decoder), "--out", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="drop DIT_EXPORT"):
        script.main([str(runs["dit"]), "--replace-vae", str(decoder), "--out", str(out)])
    with pytest.raises(SystemExit, match="pass DIT_EXPORT and VAE_EXPORT"):
        script.main(["--out", str(out)])
    # a new J-DiT beside the ST-VAE part of that model folder keeps the ST-VAE's training record
    again = tmp_path / "new-dit"
    assert script.main([str(runs["dit"]), str(out / "vae"), "--out", str(again)]) == 0
    assert json.loads((again / folders.INDEX_FILE).read_text())["vae_training"] == index["vae_training"]


def test_export_shipped_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(SystemExit, match="no config.json"):
        _export_script().main([str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o")])



def test_export_shipped_records_an_init_inside_the_repository_relative_to_it():
    script = _export_script()
    inside = str(script.REPO / "runs" / "vae-copy2" / "export")
    assert script.portable({"init": inside, "preset": "p"}) == {"init": "runs/vae-copy2/export", "preset": "p"}
    for kept in ({"init": "/elsewhere/export"}, {"init": "lavin-tiny"}, {"init": ""}, {}):
        assert script.portable(kept) == kept  # outside the repository, a model name, none

"""The J-DiT's arithmetic while sampling (``precision``): bf16 autocast where asked, float32
where ``auto`` finds no native bf16, a model folder's recommendation, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from lavin_core.context import ExamplePair, TaskContext
from lavin_core.devices import autocast_dtype, check_precision
from lavin_core.errors import CheckpointError
from lavin_core.pipeline import load_pipeline
from tests.tiny_model import make_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_model_folder(tmp_path_factory.mktemp("precision") / "model")


def _context(seed: int = 0) -> TaskContext:
    gen = torch.Generator().manual_seed(seed)
    image = lambda: torch.rand(3, 1, 32, 32, generator=gen) * 2 - 1  # noqa: E731
    return TaskContext(task="t", pairs=[ExamplePair(input=image(), target=image())], query=image())


def _live(pipe):
    """``pipe`` with its J-DiT's zero-initialised layers (adaLN gates, the output layer) drawn at
    random, so that the velocity, and so the latents, depend on every matmul."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in pipe.denoiser.parameters():
            if not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.05)
    return pipe


def _latents(pipe, precision: str) -> torch.Tensor:
    pipe.precision = precision
    return pipe(_context(), num_steps=3, seed=5, output_type="latent", progress=False).latents[0]


class _Recording(torch.nn.Module):
    """Wraps a J-DiT and records the dtype autocast gives its matmuls."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, *args, **kwargs):
        self.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return self.inner(*args, **kwargs)


def test_bf16_sampling_stays_close_to_float32_and_returns_the_models_dtype(folder):
    pipe = _live(load_pipeline(folder, schedule="uniform"))
    fp32, bf16 = _latents(pipe, "fp32"), _latents(pipe, "bf16")
    assert bf16.dtype == fp32.dtype == torch.float32
    assert not torch.equal(bf16, fp32)  # the matmuls did run in bf16
    assert ((bf16 - fp32).norm() / fp32.norm()).item() < 0.05
    assert pipe.sampling_dtype == torch.bfloat16


def test_auto_is_float32_exactly_where_the_device_lacks_native_bf16(folder, monkeypatch):
    import lavin_core.devices as devices

    pipe = _live(load_pipeline(folder, schedule="uniform"))
    fp32 = _latents(pipe, "fp32")
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    assert torch.equal(_latents(pipe, "auto"), fp32) and pipe.sampling_dtype == torch.float32
    monkeypatch.setattr(devices, "native_bf16", lambda device: True)
    assert torch.equal(_latents(pipe, "auto"), _latents(pipe, "bf16"))


def test_only_the_jdit_runs_under_autocast(folder):
    pipe = load_pipeline(folder, schedule="uniform", precision="bf16")
    pipe.denoiser = _Recording(pipe.denoiser)
    pipe(_context(), num_steps=2, seed=0, progress=False)
    assert pipe.denoiser.seen and set(pipe.denoiser.seen) == {torch.bfloat16}
    assert not torch.is_autocast_enabled("cpu")  # and it is off again afterwards


def test_a_model_folder_may_recommend_a_precision_and_a_call_may_override_it(folder, tmp_path):
    import shutil

    copy = tmp_path / "bf16-model"
    shutil.copytree(folder, copy)
    index = json.loads((copy / "model_index.json").read_text())
    (copy / "model_index.json").write_text(json.dumps({**index, "precision": "bf16"}))
    assert load_pipeline(copy).precision == "bf16"
    assert load_pipeline(copy, precision="fp32").precision == "fp32"
    assert load_pipeline(folder).precision == "fp32"  # no recommendation: float32
    (copy / "model_index.json").write_text(json.dumps({**index, "precision": "fp16"}))
    with pytest.raises(CheckpointError, match=r"model_index.json: precision must be one of auto, fp32, bf16, got 'fp16'"):
        load_pipeline(copy)


def test_bad_precisions_are_refused_with_what_works(folder):
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'half'"):
        load_pipeline(folder, precision="half")
    pipe = load_pipeline(folder)
    with pytest.raises(ValueError, match="got 'float16'"):
        pipe.precision = "float16"
    assert pipe.precision == "fp32"
    with pytest.raises(ValueError, match="got None"):
        check_precision(None)
    assert autocast_dtype("fp32", torch.device("cpu")) is None


def test_the_cli_flag_is_checked_and_bench_records_the_dtype(folder, tmp_path, capsys):
    from lavin_core.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--model", str(folder), "--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    assert main(["bench", "--model", str(folder), "--tasks", "depth", "--count", "1", "--steps", "2", "--ensemble", "1",
                 "--precision", "bf16", "--out", str(tmp_path / "bench"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert result["sampling_dtype"] == "bfloat16"
    assert "(J-DiT in bfloat16)" in (tmp_path / "bench" / "bench.md").read_text()

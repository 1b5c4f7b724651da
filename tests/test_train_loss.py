"""A few hundred CPU steps of the tiny J-DiT on one task cut the flow-matching loss clearly; each
log line holds the means of its window."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.data.cache import StaleCacheError, build_cache
from lavin_core.pipeline import load_pipeline
from lavin_core.stvae import STVAE
from lavin_core.train.config import load_config
from lavin_core.train.metrics import read_metrics
from lavin_core.train.plot import plot_loss
from lavin_core.train.toy import make_toy_workspace
from lavin_core.train.trainer import train


@pytest.mark.slow
def test_tiny_jdit_learns_the_toy_task(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    config = load_config(config_path, ["run.steps=200", "run.log_every=10", "checkpoint.every=200",
                                       "data.min_pairs=1", "data.max_pairs=1", "train.batch_size=8",
                                       "schedule.warmup_steps=10"])
    train(config, tmp_path / "run")
    losses = [record["loss"] for record in read_metrics(tmp_path / "run")]
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    print(f"loss: first three logs {first:.4f}, last three {last:.4f}, ratio {last / first:.3f}")
    assert last < 0.6 * first, losses
    assert plot_loss(tmp_path / "run").stat().st_size > 0

    # The export is what the pipeline loads.
    pipe = load_pipeline(dit=str(tmp_path / "run" / "export"), vae=str(tmp_path / "vae"), sampler="euler",
                         schedule="uniform")
    pairs = sorted((tmp_path / "invert").glob("*_input.png"))[:2]
    out = pipe(pairs=[(p, str(p).replace("_input", "_target")) for p in pairs], query=str(pairs[0]), num_steps=2,
               generator=torch.Generator().manual_seed(0), progress=False)
    assert out.prediction.shape == (1, 3, 1, 32, 32)


def test_dit_trains_from_a_latent_cache_built_with_its_encoder(tmp_path):
    import registry

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path))
    task = registry.get_task("folder", path=str(tmp_path / "invert"), size=32)
    vae = STVAE.from_pretrained(str(tmp_path / "vae"))
    build_cache(task, vae, str(tmp_path / "invert.zarr"), count=6)
    overrides = ["run.steps=2", "data.source='cache'", f"data.caches=['{(tmp_path / 'invert.zarr').as_posix()}']",
                 "data.max_pairs=2"]
    export = train(load_config(config_path, overrides), tmp_path / "run")
    assert (export / "model.safetensors").is_file()
    assert all(r["loss"] > 0 for r in read_metrics(tmp_path / "run"))

    # Latents of another encoder would train the J-DiT on the wrong space: refused before any step.
    other_vae = tmp_path / "other-vae"
    torch.manual_seed(1)
    STVAE.from_preset("lavin-tiny").save_pretrained(str(other_vae))
    with pytest.raises(StaleCacheError, match="was built with encoder"):
        train(load_config(config_path, [*overrides, f"model.vae='{other_vae.as_posix()}'"]), tmp_path / "run2")
    assert not (tmp_path / "run2" / "checkpoints").exists()


@settings(max_examples=30, deadline=None)
@given(losses=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=12), every=st.integers(1, 3))
def test_a_log_line_holds_the_means_of_its_window(losses, every):
    from lavin_core.train.trainer import LogWindow

    window = LogWindow()
    for i, loss in enumerate(losses):
        terms = {"loss_a": 2 * loss, **({"loss_b": float(i)} if i % every == 0 else {})}
        window.add(torch.tensor([loss], dtype=torch.float32), terms)
    mean, terms = window.means()
    assert mean == pytest.approx(sum(losses) / len(losses), rel=1e-5, abs=1e-6)
    assert terms["loss_a"] == pytest.approx(2 * sum(losses) / len(losses), rel=1e-5, abs=1e-6)
    present = [float(i) for i in range(len(losses)) if i % every == 0]
    assert terms["loss_b"] == pytest.approx(sum(present) / len(present))  # over the steps that had it
    window.add(torch.tensor([1.0]), {"loss_a": 3.0})
    assert window.means() == (pytest.approx(1.0), {"loss_a": 3.0})  # a new window after each line

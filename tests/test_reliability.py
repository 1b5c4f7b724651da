"""Reliability: bad input gets one line (never a traceback, never silent garbage), and nothing that
existed before is lost. The cases of issue 19 and more, across the API and every command.

Run alone with ``python -m pytest -m reliability``. The kill -9 cases are in
``test_reliability_kill.py``.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lavin_core import atomic
from lavin_core.checkpoint import StateDictMismatchError, describe_layout, read_safetensors
from lavin_core.cli import main
from lavin_core.data import images
from lavin_core.data.cache import CacheError, open_cache
from lavin_core.data.images import ImageError, to_pixels
from lavin_core.data.outputs import OutputExistsError, check_output_path, save_image
from lavin_core.devices import DeviceError, check_device
from lavin_core.errors import CheckpointError, LavinError
from lavin_core.jdit import JDiT
from lavin_core.pretrained import load_denoiser, load_encoder
from lavin_core.stvae import STVAE
from lavin_core.train.config import ConfigError, check_local_path, load_config

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[1]
TINY_VAE = str(ROOT / "lavin_core" / "weights" / "lavin-tiny" / "vae")
TINY_DIT = str(ROOT / "lavin_core" / "weights" / "lavin-tiny" / "dit")


def assert_one_line(text: str) -> None:
    text = str(text).strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    assert "object at 0x" not in text, text  # no Python reprs such as <_io.BytesIO object at 0x...>


def png_bytes(shape=(16, 16, 3), seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# images in


def _bad_image_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    full = png_bytes((32, 32, 3))
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(jpeg, format="JPEG")
    files = {
        "empty.png": (b"", r"is not a readable image: the file is empty \(0 bytes\)"),
        "text.png": (b"hello, world", "is not a readable image"),
        "truncated.png": (full[: len(full) // 2], "truncated.png"),
        "header-only.png": (full[:33], "header-only.png"),
        "truncated.jpg": (jpeg.getvalue()[:40], "truncated.jpg"),
        "html.jpg": (b"<html><body>404 Not Found</body></html>", "is not a readable image"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: (str(tmp_path / name), message) for name, (_, message) in files.items()}


@pytest.mark.parametrize("name", ["empty.png", "text.png", "truncated.png", "header-only.png", "truncated.jpg", "html.jpg"])
def test_corrupt_and_truncated_image_files(tmp_path, name):
    path, message = _bad_image_files(tmp_path)[name]
    with pytest.raises(ImageError, match=message) as info:
        to_pixels(path, what="query")
    assert_one_line(info.value)
    assert name in str(info.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: str(tmp / "missing.png"), "no image or clip file at"),
    (lambda tmp: str(tmp), "holds no image files"),  # a folder is a clip of frames
    (lambda tmp: "memory://reliability/nothing-here.png", "no image or clip file at"),
    (lambda tmp: np.full((8, 8, 3), np.nan, np.float32), r"must lie in \[0, 1\]"),
    (lambda tmp: np.full((8, 8, 3), 2.0, np.float32), r"must lie in \[0, 1\]"),
    (lambda tmp: torch.full((3, 8, 8), float("nan")), "NaN or infinite"),
    (lambda tmp: torch.full((3, 8, 8), float("inf")), "NaN or infinite"),
    (lambda tmp: torch.full((3, 8, 8), 3.0), r"must lie in \[-1, 1\]"),
    (lambda tmp: np.zeros((8, 8, 5), np.uint8), r"must be \(H, W, 3\)"),
    (lambda tmp: np.zeros((0, 8, 3), np.uint8), "empty"),
    (lambda tmp: torch.zeros(3, 8, 8, dtype=torch.int32), "must be float"),
    (lambda tmp: torch.zeros(4, 8, 8), r"must be \(3, H, W\)"),
    (lambda tmp: np.zeros((8, 8, 3), np.complex64), "must be uint8 or float"),
    (lambda tmp: [np.zeros((8, 8, 3), np.uint8)] * 3, "1 \\+ 4k"),
    (lambda tmp: [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 16, 3), np.uint8)], "share one size"),
    (lambda tmp: [], "empty list"),
    (lambda tmp: {"not": "an image"}, "cannot use a dict"),
    (lambda tmp: 42, "cannot use a int"),
], ids=["missing", "folder", "missing-url", "nan-numpy", "over-range-numpy", "nan-tensor", "inf-tensor",
        "over-range-tensor", "five-channels", "zero-height", "int-tensor", "four-channel-tensor", "complex",
        "three-frames", "mixed-frame-sizes", "empty-list", "dict", "int"])
def test_bad_image_values(tmp_path, make, message):
    with pytest.raises((ImageError, ValueError, TypeError), match=message) as info:
        to_pixels(make(tmp_path), what="query")
    assert_one_line(info.value)


def test_a_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    (tmp_path / "huge.png").write_bytes(png_bytes((64, 64, 3)))
    monkeypatch.setattr(images, "MAX_PIXELS", 32 * 32)
    monkeypatch.setattr(images, "_decoded", lambda image, url: pytest.fail("decoded"))
    with pytest.raises(ImageError, match="refused before decoding") as info:
        to_pixels(str(tmp_path / "huge.png"))
    assert_one_line(info.value)


# ---------------------------------------------------------------------------------------------
# huge files: decoded within what the processing size can use (images.decode_side), never whole


def constant_png(path: Path, width: int, height: int, *, rows: int | None = None) -> str:
    """A grey 8-bit PNG of any size, written row by row: the file and this function's memory stay
    tiny. ``rows`` < ``height`` writes only that many rows (a header that promises more)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compress, row = zlib.compressobj(9), b"\x00" + b"\x80" * width  # filter byte, then the grey values
    data = b"".join(compress.compress(row) for _ in range(height if rows is None else rows)) + compress.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return str(path)


@pytest.fixture
def converted(monkeypatch) -> list[tuple[int, int]]:
    """The (W, H) of every decoded image that ``images`` turns into an array (the first big buffer)."""
    sizes, original = [], images.image_array
    monkeypatch.setattr(images, "image_array", lambda image: sizes.append(image.size) or original(image))
    return sizes


def test_lavin_run_reads_a_huge_query_scaled_down(tmp_path, capsys, converted):
    query = constant_png(tmp_path / "huge.png", 8000, 8000)
    out = tmp_path / "depth.png"
    status = main(["run", "--task", "depth", "--query", query, "--out", str(out), "--quiet", "--ensemble", "1",
                   "--steps", "2", "--schedule", "uniform"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert_one_line(captured.err)
    assert "huge.png is 8000x8000 (WxH), larger than 1024 px on its longer side; read scaled down to 1024x1024" \
        in captured.err
    assert "1024x1024" in captured.out and to_pixels(str(out)).shape == (3, 1, 1024, 1024)
    assert converted and max(max(size) for size in converted) <= 1024  # 16 x the 64 px processing size


def test_lavin_run_refuses_a_huge_query_at_its_own_size(tmp_path, capsys, monkeypatch):
    query = constant_png(tmp_path / "huge.png", 8000, 8000)
    monkeypatch.setattr(images, "_decoded", lambda image, url: pytest.fail("decoded"))
    before = snapshot(tmp_path)
    status, err = run_cli(capsys, ["run", "--task", "depth", "--query", query, "--out", str(tmp_path / "o.png"),
                                   "--processing-size", "0"])
    assert status == 2 and "larger than 1024 px on its longer side; refused before decoding" in err, err
    assert_one_line(err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("width", "height", "rows", "message"), [
    (9000, 9000, None, "more than 67,108,864 pixels to decode; refused before decoding"),
    (100_000, 100_000, 4, "decompression bomb"),  # a header promising 10^10 pixels
], ids=["over-max-pixels", "bomb-header"])
@pytest.mark.parametrize("max_side", [None, 1024])
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch, width, height, rows, message,
                                                         max_side):
    path = constant_png(tmp_path / "bomb.png", width, height, rows=rows)
    monkeypatch.setattr(images, "_decoded", lambda image, url: pytest.fail("decoded"))
    with pytest.raises(ImageError, match=message) as info, warnings.catch_warnings():
        warnings.simplefilter("error")  # refused in one line, with no "scaled down" line before it
        to_pixels(path, what="query", max_side=max_side)
    assert_one_line(info.value)
    assert "bomb.png" in str(info.value)


def test_huge_template_pairs_are_read_scaled_down(tmp_path, converted):
    from lavin_core.data.templates import read_template_folder

    folder = tmp_path / "templates"
    folder.mkdir()
    constant_png(folder / "a_input.png", 4000, 3000)
    constant_png(folder / "a_target.png", 4000, 3000)
    with pytest.warns(UserWarning, match=r"is 4000x3000 .* read scaled down to 1024x768") as record:
        pairs = read_template_folder(folder, size=(48, 64))
    assert sorted(str(w.message).split(" is ")[0].rsplit("/", 1)[1] for w in record) == ["a_input.png", "a_target.png"]
    assert pairs[0].input.shape == pairs[0].target.shape == (3, 1, 48, 64)
    assert max(max(size) for size in converted) <= 1024


def test_the_pipeline_reads_huge_files_scaled_down(tmp_path, converted):
    from lavin_core.pipeline import load_pipeline

    query = constant_png(tmp_path / "query.png", 4000, 2000)
    pair = (constant_png(tmp_path / "in.png", 3000, 3000), constant_png(tmp_path / "out.png", 3000, 3000))
    pipe = load_pipeline(schedule="uniform")
    with pytest.warns(UserWarning, match="read scaled down"):
        out = pipe(pairs=[pair], query=query, num_steps=1, num_samples=1, progress=False)
    assert out.predictions[0].shape == (3, 1, 512, 1024)  # the query as read: 16 x the 64 px processing size
    assert max(max(size) for size in converted) <= 1024


def test_a_huge_animated_query_is_scaled_down_frame_by_frame(tmp_path):
    frames = [Image.new("L", (3000, 2000), 40 * i) for i in range(5)]  # grey: nothing to quantize
    frames[0].save(tmp_path / "huge.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    del frames
    with pytest.warns(UserWarning, match=r"huge.gif is 3000x2000 .* read scaled down to 256x171") as record:
        clip = images.read_clip(tmp_path / "huge.gif", max_side=256)
    assert clip.pixels.shape == (3, 5, 171, 256) and clip.fps == 10.0
    assert len(record) == 1  # one line for the clip, not one per frame
    with pytest.raises(ImageError, match="refused before decoding") as info:
        images.read_clip(tmp_path / "huge.gif", max_side=256, oversize="refuse")
    assert_one_line(info.value)


def test_a_huge_video_query_is_scaled_down_by_ffmpeg(tmp_path, caplog):
    pytest.importorskip("imageio_ffmpeg")
    from lavin_core.data import video

    video.write_frames(np.full((5, 1080, 1920, 3), 200, np.uint8), tmp_path / "hd.mp4", fps=10)
    with pytest.warns(UserWarning, match=r"hd.mp4 is 1920x1080 .* read scaled down to 256x144"):
        clip = images.read_clip(tmp_path / "hd.mp4", max_side=256)
    assert clip.pixels.shape == (3, 5, 144, 256) and clip.fps == 10.0
    assert not [r for r in caplog.records if r.name.startswith("imageio")]  # ours is the only message


# ---------------------------------------------------------------------------------------------
# outputs


@pytest.mark.parametrize(("name", "message"), [
    ("prediction.txt", "extension '.txt'"),
    ("prediction", "no extension"),
    ("prediction.PDF", "extension '.pdf'"),
])
def test_output_extension_chooses_the_format_or_is_refused(tmp_path, name, message):
    with pytest.raises(ImageError, match=message) as info:
        check_output_path(tmp_path / name, overwrite=False)
    assert_one_line(info.value)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize(("name", "fmt"), [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.JPEG", "JPEG"), ("a.webp", "WEBP"),
                                           ("a.bmp", "BMP"), ("a.tif", "TIFF")])
def test_each_image_format_is_written_in_its_own_format(tmp_path, name, fmt):
    pixels = to_pixels(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8))
    assert save_image(pixels, tmp_path / name) == fmt
    with Image.open(tmp_path / name) as image:
        assert image.format == fmt and image.size == (24, 16)
    if fmt in ("PNG", "WEBP", "BMP", "TIFF"):  # lossless
        assert torch.equal(to_pixels(str(tmp_path / name)), pixels)


def test_an_existing_output_is_kept_without_overwrite(tmp_path):
    out = tmp_path / "depth.png"
    out.write_bytes(b"the user's precious file")
    pixels = to_pixels(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(OutputExistsError, match="--overwrite") as info:
        save_image(pixels, out, overwrite=False)
    assert_one_line(info.value)
    assert out.read_bytes() == b"the user's precious file"
    save_image(pixels, out, overwrite=True)
    assert to_pixels(str(out)).shape == (3, 1, 8, 8)


@pytest.mark.parametrize(("setup", "message"), [
    (lambda tmp: (tmp / "out").mkdir() or tmp / "out", "is a folder"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "a.png", "is a file, not a folder"),
])
def test_outputs_where_a_file_cannot_go(tmp_path, setup, message):
    with pytest.raises(ImageError, match=message) as info:
        check_output_path(setup(tmp_path), overwrite=True)
    assert_one_line(info.value)


def test_a_clip_cannot_be_written_as_a_still_format(tmp_path):
    clip = torch.zeros(3, 5, 8, 8)
    with pytest.raises(ImageError, match="5-frame clip cannot be written as JPEG"):
        save_image(clip, tmp_path / "clip.jpg")
    save_image(clip, tmp_path / "clip.png")
    assert to_pixels(str(tmp_path / "clip.png")).shape[1] == 1  # the first frame of the animated PNG


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    out = tmp_path / "a.png"
    out.write_bytes(png_bytes())
    before = out.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.zeros(3, 1, 8, 8), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_writes_to_fsspec_urls_are_whole():
    atomic.write_bytes("memory://reliability/out/a.bin", b"123")
    atomic.write_bytes("memory://reliability/out/a.bin", b"4567")
    import fsspec

    fs = fsspec.filesystem("memory")
    assert fs.cat("/reliability/out/a.bin") == b"4567"
    assert [p.rsplit("/", 1)[-1] for p in fs.ls("/reliability/out", detail=False)] == ["a.bin"]


# ---------------------------------------------------------------------------------------------
# atomic folders (export/, save_pretrained)


def test_a_folder_write_that_fails_leaves_the_old_folder(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_folder(folder) as temporary:
            Path(temporary, "config.json").write_text("new, half")
            raise RuntimeError("killed")
    assert (folder / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_replacing_a_folder_keeps_the_users_other_files(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "more.txt").write_text("also mine")
    model = STVAE.from_preset("lavin-tiny")
    model.save_pretrained(str(folder))
    model.save_pretrained(str(folder))
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "sub" / "more.txt").read_text() == "also mine"
    assert STVAE.from_pretrained(str(folder)).config == model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_save_pretrained_onto_a_file_is_one_line(tmp_path):
    (tmp_path / "ckpt").write_text("a file")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        STVAE.from_preset("lavin-tiny").save_pretrained(str(tmp_path / "ckpt"))
    assert (tmp_path / "ckpt").read_text() == "a file"


def test_save_pretrained_to_memory_writes_config_last():
    model = STVAE.from_preset("lavin-tiny")
    model.save_pretrained("memory://reliability/vae")
    assert STVAE.from_pretrained("memory://reliability/vae").config == model.config


def _export(model: STVAE, folder: Path) -> None:
    from lavin_core.train.checkpointing import export_pretrained

    export_pretrained(STVAE, model.config, model.state_dict(), str(folder))


@pytest.mark.parametrize("first", [True, False], ids=["first-export", "re-export"])
def test_an_export_that_fails_midway_leaves_the_old_export_or_none(tmp_path, monkeypatch, first):
    from lavin_core.train import checkpointing

    model, export = STVAE.from_preset("lavin-tiny"), tmp_path / "export"
    if not first:
        _export(model, export)
    before = snapshot(tmp_path)

    def crash(path, layout, tensor_of, metadata=None):
        Path(path).write_bytes(b"half a safetensors file")
        raise OSError("killed mid-export")

    monkeypatch.setattr(checkpointing, "write_safetensors", crash)
    with pytest.raises(OSError, match="killed mid-export"):
        _export(model, export)
    assert snapshot(tmp_path) == before  # the old export whole (or no export), and no debris
    if not first:
        assert STVAE.from_pretrained(str(export)).config == model.config


def _rename_targets(monkeypatch) -> list[tuple[str, str]]:
    """Every (source, destination) that ``os.replace`` moves from now on."""
    moves, original = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: moves.append((os.fspath(src), os.fspath(dst))) or original(src, dst))
    return moves


def test_the_loss_plot_is_written_atomically(tmp_path, monkeypatch):
    from lavin_core.train.plot import plot_loss

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 6)))
    moves = _rename_targets(monkeypatch)
    plot = plot_loss(run)
    assert [Path(dst) for _, dst in moves] == [plot] and Path(moves[0][0]).name.startswith(atomic.TEMP_PREFIX)
    before = plot.read_bytes()
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):
        plot_loss(run)
    assert plot.read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["loss.png", "metrics.jsonl"]
    with pytest.raises(ImageError, match="extension '.txt'"):
        plot_loss(run, run / "loss.txt")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dit", "vae"])
def test_sample_grids_are_written_atomically(tmp_path, monkeypatch, stage):
    from lavin_core.train.toy import make_toy_workspace
    from lavin_core.train.trainer import train

    config_path = tmp_path / "config.toml"
    config_path.write_text(make_toy_workspace(tmp_path, pairs=4, size=32))
    overrides = [f'run.stage="{stage}"', "run.steps=2", "checkpoint.every=2", "train.batch_size=2",
                 "data.max_pairs=2", "samples.every=1", "samples.count=2", "samples.num_steps=1"]
    moves = _rename_targets(monkeypatch)
    train(load_config(config_path, overrides), tmp_path / "run")
    samples = tmp_path / "run" / "samples"
    grids = sorted(samples.iterdir())
    assert [p.name for p in grids] == ["step-00000001.png", "step-00000002.png"]  # and no debris
    written = {Path(dst): Path(src) for src, dst in moves}
    for grid in grids:
        assert written[grid].parent == samples and written[grid].name.startswith(atomic.TEMP_PREFIX)
        with Image.open(grid) as image:
            assert image.size[1] == 2 * 32  # one row per sample


# ---------------------------------------------------------------------------------------------
# devices


@pytest.mark.parametrize(("device", "message"), [
    ("gpu0", "unknown device 'gpu0'; use cpu, cuda, cuda:N or mps"),
    ("GPU", "unknown device"),
    ("", "unknown device"),
    ("cuda:", "unknown device"),
    ("tpu", "unknown device"),
    ("cpu:1", "one CPU device"),
])
def test_malformed_devices(device, message):
    with pytest.raises(DeviceError, match=message) as info:
        check_device(device)
    assert_one_line(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line(device):
    with pytest.raises(DeviceError, match="CUDA is not available here") as info:
        check_device(device)
    assert_one_line(info.value)


@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu")])
def test_good_devices(device):
    assert check_device(device).type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_reading_weights_for_cuda_on_a_cpu_machine_is_one_line():
    with pytest.raises(DeviceError, match="CUDA is not available here"):
        read_safetensors(f"{TINY_VAE}/model.safetensors", device="cuda")


# ---------------------------------------------------------------------------------------------
# checkpoints


def _folder(tmp_path: Path, config: str | None, weights: bytes | None) -> str:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config)
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return str(folder)


@pytest.mark.parametrize(("config", "weights", "message"), [
    (None, None, "no config.json"),
    ("{not json", None, "is not valid JSON"),
    ("[1, 2]", None, "must hold a JSON object"),
    ('{"_class_name": "JDiT"}', None, "holds a JDiT checkpoint, not a STVAE"),
    ('{"colour": 3}', None, "unknown STVAEConfig field"),
    ("{}", None, "no safetensors file"),
    ("{}", b"", "not a readable safetensors file"),
    ("{}", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "not a readable safetensors file"),
], ids=["no-config", "bad-json", "json-list", "wrong-class", "unknown-field", "no-weights", "empty-weights",
        "corrupt-weights"])
def test_broken_checkpoint_folders(tmp_path, config, weights, message):
    with pytest.raises(CheckpointError, match=message) as info:
        STVAE.from_pretrained(_folder(tmp_path, config, weights))
    assert_one_line(info.value)


def test_truncated_weights_are_one_line(tmp_path):
    source = Path(TINY_VAE)
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_bytes((source / "config.json").read_bytes())
    data = (source / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as info:
        STVAE.from_pretrained(str(folder))
    assert_one_line(info.value)


def test_mismatch_message_counts_names_and_layout(tmp_path):
    from lavin_core.checkpoint import check_state_dict

    with torch.device("meta"):
        dit = JDiT.from_preset("lavin-tiny")
    vae_tensors = read_safetensors(f"{TINY_VAE}/model.safetensors")
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict(dit, vae_tensors, source="vae.safetensors")
    message = str(info.value)
    assert_one_line(message)
    assert len(message) < 700, len(message)  # was 22,000-32,000 characters
    assert "looks like a ST-VAE state dict" in message
    assert f"missing {len(dit.state_dict())}" in message and f"unexpected {len(vae_tensors)}" in message
    assert len(info.value.missing) == len(dit.state_dict()) and len(info.value.unexpected) == len(vae_tensors)
    assert len(info.value.details().splitlines()) == len(dit.state_dict()) + len(vae_tensors)


@pytest.mark.parametrize(("names", "layout"), [
    (["module.x_embedder.proj.weight", "module.blocks.0.attn.weight"], "wrapped by DDP"),
    (["_orig_mod.encoder.conv_in.weight", "_orig_mod.decoder.conv_out.weight"], "wrapped by torch.compile"),
    (["encoder.conv_in.weight", "decoder.conv_out.weight"], "ST-VAE state dict"),
    (["x_embedder.proj.weight", "blocks.0.a.weight", "blocks.1.a.weight"], "J-DiT state dict (3 tensors, 2 blocks"),
    (["unet.down.0.weight"], "unknown layout"),
    ([], "empty state dict"),
])
def test_the_layout_a_state_dict_looks_like(names, layout):
    assert layout in describe_layout(names)


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Evil()}, tmp_path / "evil.pt")
    for load in (load_denoiser, load_encoder):
        with pytest.raises(CheckpointError, match="refused, nothing in it was run") as info:
            load(str(tmp_path / "evil.pt"))
        assert_one_line(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("weights.bin2", b"x", "file of unknown kind"),
    ("notes.txt", b"x", "file of unknown kind"),
    ("plain.pt", None, "does not fit"),
    ("list.pt", [1, 2], "not a state dict"),
    ("garbage.pt", b"not a torch file", "not a readable torch checkpoint"),
    ("empty.safetensors", b"", "not a readable safetensors file"),
])
def test_files_given_as_checkpoints(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        torch.save({"blocks.0.w": torch.zeros(2)}, path)
    elif isinstance(content, list):
        torch.save(content, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_denoiser(str(path))
    assert_one_line(info.value)


@pytest.mark.parametrize(("spec", "error", "message"), [
    ("random:lavin-huge", LavinError, "lavin-huge"),
    ("no/such/folder", CheckpointError, "no J-DiT checkpoint at"),
    (TINY_VAE, CheckpointError, "holds a STVAE checkpoint, not a JDiT"),
])
def test_unknown_and_misplaced_denoiser_specs(spec, error, message):
    with pytest.raises(error, match=message) as info:
        load_denoiser(spec)
    assert_one_line(info.value)


def test_a_dit_folder_given_as_the_vae_is_one_line():
    with pytest.raises(CheckpointError, match="holds a JDiT checkpoint, not a STVAE"):
        load_encoder(TINY_DIT)


# ---------------------------------------------------------------------------------------------
# training configs: paths resolve against the config file's folder


CONFIG = """\
[run]
stage = "dit"
[model]
preset = "lavin-tiny"
vae = "{vae}"
[tasks]
depth = 1.0
"""


def test_config_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "vae").mkdir()
    (tmp_path / "configs" / "a.toml").write_text(CONFIG.format(vae="vae"))
    monkeypatch.chdir(ROOT)  # somewhere else entirely
    config = load_config(tmp_path / "configs" / "a.toml")
    assert config.model.vae == str(tmp_path / "configs" / "vae")


def test_a_path_that_only_exists_from_the_current_folder_says_how_it_resolved(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "runs" / "vae").mkdir(parents=True)
    (tmp_path / "configs" / "a.toml").write_text(CONFIG.format(vae="runs/vae"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"model.vae = 'runs/vae' .* resolves to .*configs/runs/vae.* '\.\./runs/vae'") as info:
        load_config(tmp_path / "configs" / "a.toml")
    assert_one_line(info.value)


def test_set_paths_resolve_against_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.toml").write_text(CONFIG.format(vae="lavin-tiny"))
    monkeypatch.chdir(tmp_path)
    assert load_config(tmp_path / "configs" / "a.toml").model.vae == "lavin-tiny"  # a model name stays
    config = load_config(tmp_path / "configs" / "a.toml", ['model.vae="here/vae"', 'data.caches=["memory://c.zarr"]'])
    assert config.model.vae == str(tmp_path / "here" / "vae") and config.data.caches == ("memory://c.zarr",)


def test_a_missing_config_path_names_the_rule():
    with pytest.raises(ConfigError, match="model.vae: no trained ST-VAE at /nowhere/vae .*resolve against the file's folder"):
        check_local_path("model.vae", "/nowhere/vae", "trained ST-VAE")


CONFIG_NUMBERS = [
    ("optimizer.lr=inf", "optimizer: 'lr' must be a finite number, got inf"),  # trained to NaN weights, exit 0
    ("optimizer.lr=nan", "'lr' must be a finite number, got nan"),
    ("optimizer.betas=[nan, 0.9]", r"betas must both lie in \[0, 1\)"),
    ("optimizer.betas=[1.5, 0.9]", r"betas must both lie in \[0, 1\)"),
    ("samples.guidance_scale=inf", "'guidance_scale' must be a finite number"),
    ("vae.kl_weight=inf", "'kl_weight' must be a finite number"),
    ("train.grad_clip=inf", "'grad_clip' must be a finite number"),
    ("tasks.depth=nan", "tasks.depth: mix weight must be positive \\(and finite\\), got nan"),
    ("tasks.depth=inf", "tasks.depth: mix weight must be positive \\(and finite\\), got inf"),
]


@pytest.mark.parametrize(("override", "message"), CONFIG_NUMBERS, ids=[override for override, _ in CONFIG_NUMBERS])
def test_every_config_number_is_finite_and_in_range(tmp_path, override, message):
    (tmp_path / "a.toml").write_text(CONFIG.format(vae="lavin-tiny"))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path / "a.toml", [override])
    assert_one_line(info.value)


# ---------------------------------------------------------------------------------------------
# caches


def test_opening_a_folder_that_is_no_cache(tmp_path):
    with pytest.raises(CacheError, match="no latent cache") as info:
        open_cache(str(tmp_path / "nothing.zarr"))
    assert_one_line(info.value)


def test_opening_a_zarr_group_that_is_not_ours(tmp_path):
    import zarr

    zarr.create_group(store=str(tmp_path / "other.zarr"))
    with pytest.raises(CacheError, match="not a LaVin latent cache"):
        open_cache(str(tmp_path / "other.zarr"))


# ---------------------------------------------------------------------------------------------
# the command line (in process; nothing here samples, at most lavin-tiny loads)


@pytest.fixture
def query(tmp_path):
    path = tmp_path / "q.png"
    path.write_bytes(png_bytes((64, 64, 3)))
    return str(path)


def run_cli(capsys, argv) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err
    return status, err


@pytest.mark.parametrize(("extra", "message"), [
    (["--device", "gpu0"], "unknown device 'gpu0'"),
    (["--out", "{tmp}/prediction.txt"], "extension '.txt'"),
    (["--out", "{tmp}"], "is a folder"),
    (["--query", "{tmp}/missing.png"], "no image or clip file at"),
    (["--query", "{tmp}/corrupt.png"], "is not a readable image"),
    (["--dit", "{tmp}/evil.pt", "--vae", "random:lavin-tiny"], "refused, nothing in it was run"),
    (["--dit", "{tmp}", "--vae", "random:lavin-tiny"], "no config.json"),
    (["--dit", "{tmp}/q.png", "--vae", "random:lavin-tiny"], "file of unknown kind"),
    (["--model", "lavin-huge"], "lavin-huge"),
    (["--sampler", "magic"], "magic"),
    (["--window-overlap", "-1"], "--window-overlap must be a number of frames >= 0, got -1"),  # was ignored
], ids=["device", "txt-out", "folder-out", "missing-query", "corrupt-query", "evil-dit", "folder-dit",
        "png-dit", "unknown-model", "unknown-sampler", "negative-overlap"])
def test_lavin_run_bad_input_is_one_line(tmp_path, query, capsys, extra, message):
    (tmp_path / "corrupt.png").write_bytes(png_bytes()[:30])
    torch.save({"x": torch.zeros(1), "y": _Touch(tmp_path / "pwned")}, tmp_path / "evil.pt")
    argv = ["run", "--task", "depth", "--query", query, "--out", str(tmp_path / "out.png"), "--quiet", "--ensemble", "1"]
    argv += [a.format(tmp=tmp_path) for a in extra]
    before = snapshot(tmp_path)
    status, err = run_cli(capsys, argv)
    assert status == 2 and message in err, err
    assert_one_line(err)
    assert snapshot(tmp_path) == before  # nothing written, nothing lost, nothing run


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_lavin_run_on_cuda_without_cuda(query, tmp_path, capsys):
    status, err = run_cli(capsys, ["run", "--task", "depth", "--query", query, "--out", str(tmp_path / "o.png"),
                                   "--device", "cuda"])
    assert status == 2 and "CUDA is not available here" in err
    assert_one_line(err)


def test_lavin_run_refuses_an_existing_out(query, tmp_path, capsys):
    out = tmp_path / "depth.png"
    out.write_bytes(b"keep me")
    status, err = run_cli(capsys, ["run", "--task", "depth", "--query", query, "--out", str(out)])
    assert status == 2 and "--overwrite" in err
    assert out.read_bytes() == b"keep me"


def test_lavin_run_help_says_what_happens_to_an_existing_out(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "an existing file is refused unless --overwrite" in text and "extension picks the format" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "{tmp}/missing.toml"], "no config file"),
    (["train", "{tmp}/bad.toml"], "not valid TOML"),
    (["train", "{tmp}/unknown.toml"], "unknown key"),
    (["plot-loss", "{tmp}"], "no metrics.jsonl"),
    (["cache", "info", "{tmp}/none.zarr"], "no latent cache"),
    (["cache", "build", "--task", "no-such-task", "--count", "2", "--out", "{tmp}/c.zarr", "--vae", "random:lavin-tiny"],
     "no-such-task"),
    (["cache", "build", "--task", "depth", "--count", "2", "--out", "{tmp}/c.zarr", "--vae", "random:lavin-tiny",
      "--device", "gpu0"], "unknown device"),
    (["cache", "build", "--task", "depth", "--count", "2", "--out", "{tmp}/c.zarr", "--vae", "random:lavin-tiny",
      "--group-size", "1"], "group_size >= 2"),  # was ignored for a task not drawn per context
    (["demo", "--size", "0", "--out", "{tmp}/demo"], "--size must be a positive multiple of 16, got 0"),  # ran at 64
    (["bench", "--size", "0", "--tasks", "depth", "--count", "1", "--out", "{tmp}/bench"], "--size must be a positive"),
], ids=["missing-config", "bad-toml", "unknown-key", "plot-empty", "cache-info-none", "cache-unknown-task",
        "cache-bad-device", "cache-group-size", "demo-size-0", "bench-size-0"])
def test_other_commands_bad_input_is_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "bad.toml").write_text("[run\nsteps = ")
    (tmp_path / "unknown.toml").write_text("[run]\nstepz = 3\n[tasks]\ndepth = 1.0\n")
    status, err = run_cli(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and message in err, err
    assert_one_line(err)


def test_a_processing_size_far_from_the_models_is_one_warning_line(tmp_path, query, capsys):
    status, err = run_cli(capsys, ["run", "--task", "depth", "--query", query, "--out", str(tmp_path / "o.png"),
                                   "--quiet", "--ensemble", "1", "--steps", "1", "--processing-size", "160"])
    assert status == 0 and err == ("lavin run: warning: processing at 160 px, far from the 64 px this model was "
                                   "trained at; expect a poor prediction\n"), err  # once, though options resolve twice


def test_processing_a_query_at_its_own_size_far_from_the_models_warns():
    from lavin_core.pipeline import load_pipeline

    pipe, image = load_pipeline(schedule="uniform"), torch.zeros(3, 1, 160, 96)
    with pytest.warns(UserWarning, match=r"processing at the query's own size, 96x160 \(processing size 0\), far "
                                         "from the 64 px"):
        pipe(pairs=[(image, image)], query=image, processing_size=0, num_steps=1, num_samples=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # near the model's own size: nothing to say
        small = torch.zeros(3, 1, 64, 48)
        pipe(pairs=[(small, small)], query=small, processing_size=0, num_steps=1, num_samples=1, progress=False)


def test_verbose_lists_every_mismatched_tensor(tmp_path, query, capsys):
    torch.save({"blocks.0.w": torch.zeros(2)}, tmp_path / "plain.pt")
    argv = ["run", "--task", "depth", "--query", query, "--out", str(tmp_path / "o.png"),
            "--dit", str(tmp_path / "plain.pt"), "--vae", "random:lavin-tiny"]
    status, short = run_cli(capsys, argv)
    assert status == 2 and "does not fit JDiT" in short
    assert_one_line(short)
    status, long = run_cli(capsys, ["--verbose", *argv])
    assert status == 2 and len(long.splitlines()) > 100 and "missing: answer_embed" in long


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tasks", "plugins", "cache info {cache}"])
def test_listing_commands_survive_a_closed_pipe(tmp_path, command):
    import subprocess
    import sys

    import registry
    from lavin_core.data.cache import build_cache
    from tests.standin import PoolEncoder

    cache = tmp_path / "c.zarr"
    if "{cache}" in command:
        build_cache(registry.get_task("edges", size=32), PoolEncoder(), str(cache), count=2)
    lavin = f"{sys.executable} -c 'import sys; from lavin_core.cli import main; sys.exit(main())'"
    # `head -c 1` closes the pipe after one byte, long before the listing ends.
    shell = f"{lavin} {command.format(cache=cache)} | head -c 1 > /dev/null; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.stdout.strip() in ("0", "141")  # 141: stopped by the closed pipe, as cat would be

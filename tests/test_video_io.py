"""Clip files: every format round-trips its frames and frame rate; bad clips are one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lavin_core.data import video
from lavin_core.data.images import ImageError, read_clip, to_pixels, to_uint8
from lavin_core.data.outputs import save_image

needs_ffmpeg = pytest.mark.skipif(
    __import__("importlib").util.find_spec("imageio_ffmpeg") is None, reason="the video extra is not installed")


def smooth_clip(frames: int, height: int = 32, width: int = 48, seed: int = 0) -> np.ndarray:
    """A moving gradient (lossy codecs keep smooth content close)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width]
    phase = rng.uniform(0, 6)
    out = [np.stack([(np.sin(xs / 7 + t / 2 + phase) + 1) * 120, (np.cos(ys / 5 - t / 3) + 1) * 120,
                     np.full_like(xs, 40 + 20 * t, dtype=float)], -1) for t in range(frames)]
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["clip.png", "clip.apng", "clip.gif"])
@pytest.mark.parametrize("frames", [1, 2, 7, 9])
def test_pillow_formats_round_trip_frames_and_rate(tmp_path, name, frames):
    clip = smooth_clip(frames)
    video.write_frames(clip, tmp_path / name, fps=12.5)
    back = video.read_frames(tmp_path / name)
    assert back.array.shape == clip.shape
    if name.endswith("png"):
        assert np.array_equal(back.array, clip)  # lossless
    else:
        assert np.abs(back.array.astype(int) - clip).mean() < 12  # a 256-colour palette
    assert back.fps == (None if frames == 1 else pytest.approx(12.5, rel=1e-3))


@needs_ffmpeg
@pytest.mark.parametrize("frames", [1, 5, 8])
def test_mp4_round_trips_frames_and_rate(tmp_path, frames):
    clip = smooth_clip(frames)
    video.write_frames(clip, tmp_path / "sub" / "clip.mp4", fps=24)
    back = video.read_frames(tmp_path / "sub" / "clip.mp4")
    assert back.array.shape == clip.shape and back.fps == pytest.approx(24)
    assert np.abs(back.array.astype(int) - clip).mean() < 6
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["clip.mp4"]  # no temporary file left


def test_frame_folders_read_in_name_order(tmp_path):
    clip = smooth_clip(5)
    for index in (3, 0, 4, 1, 2):
        Image.fromarray(clip[index]).save(tmp_path / f"frame_{index:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    back = video.read_frames(tmp_path)
    assert np.array_equal(back.array, clip) and back.fps is None


@pytest.mark.reliability  # issue 19: a GIF query was its first frame
def test_an_animated_gif_query_is_a_clip_not_its_first_frame(tmp_path):
    clip = smooth_clip(5)
    video.write_frames(clip, tmp_path / "q.gif", fps=10)
    pixels = to_pixels(str(tmp_path / "q.gif"), what="query")
    assert pixels.shape == (3, 5, 32, 48)
    assert read_clip(tmp_path / "q.gif").fps == pytest.approx(10)


def test_odd_frame_counts_read_but_the_model_shape_check_names_them(tmp_path):
    video.write_frames(smooth_clip(7), tmp_path / "seven.png")
    assert read_clip(tmp_path / "seven.png").num_frames == 7
    with pytest.raises(ImageError, match="has 7 frames; a clip needs 1 \\+ 4k frames"):
        to_pixels(str(tmp_path / "seven.png"), what="seven.png")


def test_save_image_chooses_the_format_by_extension_and_keeps_the_rate(tmp_path):
    pixels = torch.from_numpy(smooth_clip(5)).permute(3, 0, 1, 2).float() / 127.5 - 1
    save_image(pixels, tmp_path / "out.png", fps=6)
    save_image(pixels, tmp_path / "out.gif", fps=6)
    save_image(pixels[:, :1], tmp_path / "still.jpg")
    assert read_clip(tmp_path / "out.png").fps == pytest.approx(6)
    assert torch.equal(read_clip(tmp_path / "out.png").pixels, pixels)
    assert Image.open(tmp_path / "out.gif").format == "GIF" and Image.open(tmp_path / "still.jpg").format == "JPEG"
    assert to_uint8(read_clip(tmp_path / "out.gif").pixels).shape == (5, 32, 48, 3)
    with pytest.raises(ImageError, match="has extension '.xyz'; the extension chooses the format"):
        save_image(pixels, tmp_path / "out.xyz")


def _bad_clips(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(smooth_clip(1)[0]).save(mixed / "a.png")
    Image.fromarray(smooth_clip(1, 16, 16)[0]).save(mixed / "b.png")
    corrupt_gif = tmp_path / "corrupt.gif"
    video.write_frames(smooth_clip(5), corrupt_gif)
    corrupt_gif.write_bytes(b"GIF89a" + b"\x00" * 40)
    cases = [
        (empty, "holds no image files"),
        (mixed, "frames must share one size.*48x32.*16x16"),
        (corrupt_gif, "not a readable image or clip"),
        (tmp_path / "missing.mp4", "no image or clip file at"),
    ]
    if __import__("importlib").util.find_spec("imageio_ffmpeg") is not None:
        (tmp_path / "empty.mp4").write_bytes(b"")
        (tmp_path / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
        cases += [(tmp_path / "empty.mp4", "not a readable video"), (tmp_path / "garbage.mp4", "not a readable video")]
    return cases


def test_bad_clips_are_one_line_errors(tmp_path):
    for path, message in _bad_clips(tmp_path):
        with pytest.raises(ImageError, match=message) as info:
            read_clip(path)
        assert "\n" not in str(info.value), path
        assert str(path) in str(info.value) or path.name in str(info.value)


def test_a_one_frame_clip_is_an_image(tmp_path):
    video.write_frames(smooth_clip(1), tmp_path / "one.gif")
    assert to_pixels(str(tmp_path / "one.gif")).shape == (3, 1, 32, 48)


def test_mp4_needs_even_sides_and_says_what_works(tmp_path):
    if __import__("importlib").util.find_spec("imageio_ffmpeg") is None:
        pytest.skip("the video extra is not installed")
    with pytest.raises(video.ClipError, match="even sides.*write a .png or .gif"):
        video.write_frames(smooth_clip(5, 31, 48), tmp_path / "odd.mp4")
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_the_clip_that_was_there(tmp_path):
    if __import__("importlib").util.find_spec("imageio_ffmpeg") is None:
        pytest.skip("the video extra is not installed")
    video.write_frames(smooth_clip(5, 32, 48), tmp_path / "clip.mp4")
    before = (tmp_path / "clip.mp4").read_bytes()
    with pytest.raises(video.ClipError, match="even sides"):
        video.write_frames(smooth_clip(5, 31, 48), tmp_path / "clip.mp4")
    assert (tmp_path / "clip.mp4").read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary left behind


def test_a_missing_video_extra_is_a_one_line_error_saying_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "clip.mp4").write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    for call in (lambda: read_clip(tmp_path / "clip.mp4"),
                 lambda: save_image(torch.zeros(3, 5, 16, 16), tmp_path / "out.mp4")):
        with pytest.raises(ImageError, match="pip install 'lavin-dit\\[video\\]'") as info:
            call()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "out.mp4").exists()


def test_fsspec_urls_work_for_clips():
    clip = smooth_clip(5)
    video.write_frames(clip, "memory://clips/a.png", fps=5)
    back = video.read_frames("memory://clips/a.png")
    assert np.array_equal(back.array, clip) and back.fps == pytest.approx(5)


def test_template_folders_pair_clips_and_frame_folders(tmp_path):
    from lavin_core.data.templates import list_template_files, read_template_folder

    clips = {name: smooth_clip(5, seed=seed) for seed, name in enumerate(["a_input", "a_target", "b_input", "b_target"])}
    video.write_frames(clips["a_input"], tmp_path / "a_input.gif")
    video.write_frames(clips["a_target"], tmp_path / "a_target.png")
    for name in ("b_input", "b_target"):
        (tmp_path / name).mkdir()
        for index, frame in enumerate(clips[name]):
            Image.fromarray(frame).save(tmp_path / name / f"{index:02d}.png")
    assert [f.name for f in list_template_files(tmp_path)] == ["a", "b"]
    pairs = read_template_folder(tmp_path, size=(32, 32))
    assert all(p.input.shape == p.target.shape == (3, 5, 32, 32) for p in pairs)
    assert np.array_equal(to_uint8(read_template_folder(tmp_path)[1].target), clips["b_target"])

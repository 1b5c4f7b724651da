"""``lavin run`` on clips: any length in, the same length out, format by extension, frame rate kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lavin_core.cli import main
from lavin_core.data import video
from lavin_core.data.images import read_clip

MODELS = ["--dit", "random:lavin-tiny", "--vae", "random:lavin-tiny"]
FAST = ["--steps", "1", "--schedule", "uniform", "--quiet", "--ensemble", "1", "--num-pairs", "1"]


def clip(frames: int, size=(32, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, *size, 3), dtype=np.uint8)


def run(args, capsys):
    status = main(["run", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.slow
def test_a_long_gif_query_with_clip_templates_gives_a_clip_of_its_length(tmp_path, capsys):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    video.write_frames(clip(5, seed=1), prompts / "a_input.gif")
    (prompts / "a_target").mkdir()
    for index, frame in enumerate(clip(5, seed=2)):
        Image.fromarray(frame).save(prompts / "a_target" / f"{index:02d}.png")
    video.write_frames(clip(7, seed=3), tmp_path / "query.gif", fps=10)
    out = tmp_path / "out.png"
    status, stdout, err = run(["--task", "free-label", "--query", str(tmp_path / "query.gif"), "--prompts", str(prompts),
                               *MODELS, *FAST, "--out", str(out)], capsys)
    assert status == 0, err
    assert "(32x32, 1 example pairs, task free-label, 7 frames at 10 fps in 2 windows)" in stdout
    written = read_clip(out)
    assert written.num_frames == 7 and written.fps == pytest.approx(10)


@pytest.mark.slow
def test_a_clip_query_with_a_registered_video_task_and_an_mp4_out(tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    video.write_frames(clip(3, (30, 34), seed=4), tmp_path / "walk.mp4", fps=12)
    out = tmp_path / "depth.mp4"
    status, stdout, err = run(["--task", "video_depth", "--query", str(tmp_path / "walk.mp4"), "--processing-size", "32",
                               *MODELS, *FAST, "--out", str(out)], capsys)
    assert status == 0, err
    written = read_clip(out)  # padded to the pairs' 5 frames, cut back to 3; at the query's own size
    assert written.pixels.shape[1:] == (3, 30, 34) and written.fps == pytest.approx(12)


def test_bad_clips_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "corrupt.gif").write_bytes(b"GIF89a" + b"\0" * 20)
    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(clip(1)[0]).save(mixed / "0.png")
    Image.fromarray(clip(1, (16, 16))[0]).save(mixed / "1.png")
    video.write_frames(clip(5, (30, 34)), tmp_path / "odd.gif")
    cases = [
        (tmp_path / "corrupt.gif", "not a readable image or clip", []),
        (tmp_path / "empty", "holds no image files", []),
        (mixed, "frames must share one size", []),
        (tmp_path / "odd.gif", "multiples of 16; resize it to 32x32", ["--processing-size", "0"]),
    ]
    for query, message, extra in cases:
        status, _, err = run(["--task", "video_depth", "--query", str(query), *MODELS, *FAST, *extra,
                              "--out", str(tmp_path / "o.gif")], capsys)
        assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.gif").exists()

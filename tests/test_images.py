"""Image conversion in and out, resizing helpers, and the official template-folder layout."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence

from lavin_core.data.images import (
    ImageError,
    check_size,
    fit_size,
    read_image,
    resize,
    to_pil,
    to_pixels,
    to_uint8,
)
from lavin_core.data.outputs import save_image
from lavin_core.data.templates import TemplateError, list_template_files, read_template_folder


def random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@settings(max_examples=10, deadline=None)
@given(height=st.integers(1, 12), width=st.integers(1, 12), seed=st.integers(0, 1000))
def test_uint8_round_trips_exactly_through_every_form(height, width, seed):
    array = random_uint8((height, width, 3), seed)
    pixels = to_pixels(array)
    assert pixels.shape == (3, 1, height, width) and pixels.dtype == torch.float32
    assert pixels.min() >= -1 and pixels.max() <= 1
    assert np.array_equal(to_uint8(pixels)[0], array)
    assert torch.equal(to_pixels(Image.fromarray(array)), pixels)
    assert torch.equal(to_pixels(torch.from_numpy(array).permute(2, 0, 1).contiguous()), pixels)  # uint8 CHW
    assert torch.equal(to_pixels(pixels[:, 0]), pixels)  # float (3, H, W)
    assert np.array_equal(np.asarray(to_pil(pixels)[0]), array)


def test_float_numpy_is_read_as_zero_to_one_and_grey_and_alpha_work():
    array = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    assert torch.allclose(to_pixels(array), torch.from_numpy(array).permute(2, 0, 1)[:, None] * 2 - 1)
    grey = random_uint8((4, 4))
    assert torch.equal(to_pixels(grey)[0], to_pixels(grey)[2])
    rgba = random_uint8((4, 4, 4))
    rgba[0, 0, 3], rgba[0, 1, 3] = 255, 0
    over_black = ((rgba[..., :3].astype(np.uint16) * rgba[..., 3:] + 127) // 255).astype(np.uint8)
    assert torch.equal(to_pixels(rgba), to_pixels(over_black))  # the stated rule: alpha over black
    assert torch.equal(to_pixels(Image.fromarray(rgba, "RGBA")), to_pixels(over_black))
    assert np.array_equal(over_black[0, 0], rgba[0, 0, :3]) and not over_black[0, 1].any()


def test_lists_of_frames_make_clips():
    frames = [random_uint8((8, 8, 3), seed) for seed in range(5)]
    clip = to_pixels(frames)
    assert clip.shape == (3, 5, 8, 8)
    assert np.array_equal(to_uint8(clip), np.stack(frames))
    assert torch.equal(to_pixels(np.stack(frames)), clip)
    with pytest.raises(ImageError, match="1 \\+ 4k frames"):
        to_pixels(frames[:2])
    with pytest.raises(ImageError, match="share one size"):
        to_pixels([frames[0], random_uint8((4, 4, 3))] * 2 + [frames[0]])
    with pytest.raises(ImageError, match="empty list"):
        to_pixels([])


def test_bad_inputs_get_one_line_errors(tmp_path):
    cases = [
        (str(tmp_path / "missing.png"), "no image or clip file at"),
        (np.random.default_rng(0).random((4, 4, 3)) * 3, r"must lie in \[0, 1\]"),
        (np.zeros((4, 4, 3), dtype=np.int64) + 3, "uint8 or float"),
        (torch.rand(4, 4), r"\(3, H, W\) or \(3, T, H, W\)"),
        (torch.rand(3, 4, 4) * 4, r"pixels must lie in \[-1, 1\]"),
        (torch.ones(3, 4, 4, dtype=torch.int32), "float in \\[-1, 1\\] or uint8"),
        (42, "cannot use a int as an image"),
    ]
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    cases.append((str(garbage), "not a readable image"))
    (tmp_path / "empty").mkdir()
    cases.append((str(tmp_path / "empty"), "holds no image files"))
    for value, message in cases:
        with pytest.raises(ImageError, match=message) as info:
            to_pixels(value, what="query")
        assert "\n" not in str(info.value)


def test_files_and_fsspec_urls_round_trip(tmp_path):
    pixels = to_pixels(random_uint8((9, 7, 3)))
    save_image(pixels, tmp_path / "sub" / "a.png")
    assert torch.equal(to_pixels(str(tmp_path / "sub" / "a.png")), pixels)
    save_image(pixels, "memory://images/a.png")
    assert torch.equal(to_pixels("memory://images/a.png"), pixels)
    jpeg = tmp_path / "b.jpg"
    Image.fromarray(random_uint8((16, 16, 3))).save(jpeg, quality=95)
    assert read_image(jpeg).size == (16, 16)


def test_a_clip_is_saved_as_an_animated_png(tmp_path):
    clip = to_pixels([random_uint8((6, 6, 3), seed) for seed in range(5)])
    save_image(clip, tmp_path / "clip.png")
    with Image.open(tmp_path / "clip.png") as image:
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    assert np.array_equal(np.stack(frames), to_uint8(clip))


def test_sizes_and_resizing():
    assert fit_size(30, 34, 16) == (32, 32)
    assert fit_size(5, 100, 16) == (16, 96)
    check_size(torch.zeros(3, 1, 32, 48), 16)
    with pytest.raises(ImageError, match="34x30 \\(WxH\\).*multiples of 16; resize it to 32x32"):
        check_size(torch.zeros(3, 1, 30, 34), 16, "the query")
    pixels = to_pixels(random_uint8((30, 34, 3)))
    resized = resize(pixels, (32, 32))
    assert resized.shape == (3, 1, 32, 32) and resized.min() >= -1 and resized.max() <= 1
    constant = torch.full((3, 5, 20, 12), 0.25)
    assert torch.allclose(resize(constant, (16, 8)), torch.full((3, 5, 16, 8), 0.25), atol=1e-6)
    assert resize(pixels, (30, 34)) is pixels


# ---------------------------------------------------------------------------------------------
# template folders


def write_template(folder, names, size=(8, 8), seed=0):
    fs, root = fsspec.core.url_to_fs(str(folder))
    fs.makedirs(root, exist_ok=True)
    for index, name in enumerate(names):
        save_image(to_pixels(random_uint8((*size, 3), seed + 2 * index)), f"{folder}/{name}_input.png")
        save_image(to_pixels(random_uint8((*size, 3), seed + 2 * index + 1)), f"{folder}/{name}_target.png")


def test_template_folder_pairs_by_name(tmp_path):
    write_template(tmp_path, ["b", "a_with_underscores", "c"])
    (tmp_path / "notes.txt").write_text("ignored")
    files = list_template_files(tmp_path)
    assert [f.name for f in files] == ["a_with_underscores", "b", "c"]
    assert files[0].input.endswith("a_with_underscores_input.png")
    pairs = read_template_folder(tmp_path)
    assert len(pairs) == 3 and pairs[0].input.shape == (3, 1, 8, 8)
    assert torch.equal(pairs[1].target, to_pixels(str(tmp_path / "b_target.png")))
    two = read_template_folder(tmp_path, size=(16, 24), limit=2)
    assert len(two) == 2 and two[0].target.shape == (3, 1, 16, 24)


def test_template_folder_over_fsspec():
    write_template("memory://templates/depth", ["x", "y"])
    pairs = read_template_folder("memory://templates/depth")
    assert len(pairs) == 2
    assert torch.equal(pairs[0].input, to_pixels("memory://templates/depth/x_input.png"))


def test_template_folder_errors(tmp_path):
    with pytest.raises(TemplateError, match="does not exist"):
        list_template_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TemplateError, match="has no NAME_input.png / NAME_target.png pairs"):
        list_template_files(tmp_path / "empty")
    write_template(tmp_path / "odd", ["a", "b"])
    (tmp_path / "odd" / "b_target.png").unlink()
    save_image(to_pixels(random_uint8((8, 8, 3))), tmp_path / "odd" / "c_target.png")
    with pytest.raises(TemplateError, match=r"unmatched template files: b_input \(no target\), c_target \(no input\)"):
        list_template_files(tmp_path / "odd")
    write_template(tmp_path / "sizes", ["a"])
    save_image(to_pixels(random_uint8((4, 4, 3))), tmp_path / "sizes" / "a_target.png")
    with pytest.raises(TemplateError, match="input is 8x8 but target is 4x4"):
        read_template_folder(tmp_path / "sizes")

"""Image files are read by their real mode and bit depth: each kind against its 8-bit RGB twin,
and oversized files are refused or scaled down before their full-size pixels are decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lavin_core.data import images
from lavin_core.data.images import ImageError, read_image_array, to_pixels

# issue 19: 16-bit, palette, grey, alpha and EXIF against their 8-bit twins; oversized files
pytestmark = pytest.mark.reliability


def rgb8(seed=0, size=(12, 10)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def grey8(seed=0, size=(12, 10)):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def saved(tmp_path, image: Image.Image, name: str, **options) -> str:
    path = tmp_path / name
    image.save(path, **options)
    return str(path)


def test_16_bit_grey_png_keeps_its_contrast(tmp_path):
    grey = grey8()
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)  # v * 257 spans 0..65535 as v spans 0..255
    path = saved(tmp_path, sixteen, "deep.png")
    assert Image.open(path).mode.startswith("I")
    twin = to_pixels(np.repeat(grey[..., None], 3, axis=-1))
    got = to_pixels(path)
    assert torch.allclose(got, twin, atol=1e-6)
    assert got.max() - got.min() > 1.5  # the contrast is there (the old reading clipped it to white)


def test_16_bit_values_between_8_bit_steps_are_kept(tmp_path):
    values = np.arange(0, 65536, 257 // 2, dtype=np.uint16)[:120].reshape(12, 10)
    got = read_image_array(saved(tmp_path, Image.fromarray(values), "fine.png"))
    assert got.dtype == np.float32
    assert np.allclose(got[..., 0], values / 65535.0, atol=1e-7)


def test_8_bit_grey_is_the_grey_of_its_rgb_twin(tmp_path):
    grey = grey8(1)
    path = saved(tmp_path, Image.fromarray(grey, "L"), "grey.png")
    assert torch.equal(to_pixels(path), to_pixels(np.repeat(grey[..., None], 3, axis=-1)))


def test_palette_png_reads_as_its_rgb_twin(tmp_path):
    rgb = rgb8(2)
    palette = Image.fromarray(rgb).quantize(colors=64)
    twin = np.asarray(palette.convert("RGB"))
    path = saved(tmp_path, palette, "palette.png")
    assert Image.open(path).mode == "P"
    assert torch.equal(to_pixels(path), to_pixels(twin))


def test_palette_with_a_transparent_entry_is_black_there(tmp_path):
    palette = Image.fromarray(grey8(3) // 64, "L").convert("P")  # 4 colours: indices 0..3
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.info["transparency"] = 1  # red is fully transparent
    path = saved(tmp_path, palette, "transparent.png", transparency=1)
    indices = np.asarray(Image.open(path))
    got = read_image_array(path)
    assert not got[indices == 1].any()
    assert (got[indices == 2] == [0, 255, 0]).all()


def test_rgba_composites_over_black(tmp_path):
    rgb = rgb8(4)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    opaque = saved(tmp_path, Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "opaque.png")
    assert torch.equal(to_pixels(opaque), to_pixels(rgb))  # fully opaque: exactly its RGB twin
    alpha[:, :5] = 0
    alpha[:, 5:] = 128
    half = read_image_array(saved(tmp_path, Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "half.png"))
    assert not half[:, :5].any()
    assert np.array_equal(half[:, 5:], ((rgb[:, 5:].astype(np.uint16) * 128 + 127) // 255).astype(np.uint8))


def test_grey_with_alpha_composites_over_black(tmp_path):
    grey = grey8(5)
    path = saved(tmp_path, Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA"), "la.png")
    assert torch.equal(to_pixels(path), to_pixels(np.repeat(grey[..., None], 3, axis=-1)))


@pytest.mark.parametrize("orientation, turn", [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270),
                                               (8, Image.Transpose.ROTATE_90), (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    rgb = rgb8(6)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = saved(tmp_path, Image.fromarray(rgb), "photo.png", exif=exif)
    upright = np.asarray(Image.fromarray(rgb).transpose(turn))
    assert torch.equal(to_pixels(path), to_pixels(upright))


def test_cmyk_and_bilevel_read_as_their_rgb_conversion(tmp_path):
    rgb = rgb8(7)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    path = saved(tmp_path, cmyk, "print.tif")
    assert torch.equal(to_pixels(path), to_pixels(np.asarray(cmyk.convert("RGB"))))
    bits = Image.fromarray(grey8(8) > 127)
    path = saved(tmp_path, bits, "bits.png")
    assert torch.equal(to_pixels(path), to_pixels(np.asarray(bits.convert("RGB"))))


def test_a_pil_image_argument_follows_the_same_rules():
    grey = grey8(9)
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert torch.allclose(to_pixels(sixteen), to_pixels(np.repeat(grey[..., None], 3, axis=-1)), atol=1e-6)


def test_an_oversized_jpeg_is_decoded_small(tmp_path, monkeypatch):
    big = Image.fromarray(np.kron(rgb8(10, (4, 4)), np.ones((256, 256, 1), np.uint8)))  # 1024 x 1024
    path = saved(tmp_path, big, "big.jpg", quality=90)
    decoded = []
    original = images._decoded

    def spy(image, url):
        decoded.append(image.size)
        return original(image, url)

    monkeypatch.setattr(images, "_decoded", spy)
    with pytest.warns(UserWarning, match=r"1024x1024 .* scaled down to 100x100"):
        got = read_image_array(path, max_side=100)
    assert got.shape == (100, 100, 3)
    assert max(decoded[0]) <= 128  # decoded at 1/8 scale: the 1024 x 1024 buffer never existed


def test_an_oversized_image_can_be_refused_before_decoding(tmp_path, monkeypatch):
    path = saved(tmp_path, Image.fromarray(rgb8(11, (300, 200))), "wide.png")
    monkeypatch.setattr(images, "_decoded", lambda image, url: pytest.fail("decoded"))
    with pytest.raises(ImageError, match=r"wide.png is 200x300 \(WxH\), larger than 64 px .* refused before decoding"):
        read_image_array(path, max_side=64, oversize="refuse")


def test_a_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    path = saved(tmp_path, Image.fromarray(rgb8(12, (101, 100))), "huge.png")
    monkeypatch.setattr(images, "_decoded", lambda image, url: pytest.fail("decoded"))
    with pytest.raises(ImageError, match=r"huge.png is 100x101 \(WxH\), more than 10,000 pixels"):
        to_pixels(path)


def test_a_small_image_with_max_side_is_read_as_is(tmp_path):
    rgb = rgb8(13)
    path = saved(tmp_path, Image.fromarray(rgb), "small.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(to_pixels(path, max_side=64), to_pixels(rgb))


@pytest.mark.parametrize("data, message", [
    (b"not an image at all", "is not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "is not a readable image"),
])
def test_unreadable_files_are_named_not_their_buffer(tmp_path, data, message):
    path = tmp_path / "broken.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=message) as info:
        to_pixels(str(path))
    assert "BytesIO" not in str(info.value) and "broken.png" in str(info.value)


def test_a_truncated_png_names_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(rgb8(14, (64, 64))).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.png") as info:
        to_pixels(str(path))
    assert "BytesIO" not in str(info.value) and "\n" not in str(info.value)

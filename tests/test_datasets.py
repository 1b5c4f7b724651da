"""Template folders as datasets, the folder-backed task, and folder image sources (local and fsspec)."""

from __future__ import annotations

import io

import fsspec
import numpy as np
import pytest
import torch
from PIL import Image

import registry
from lavin_core.data.datasets import TemplateFolder
from lavin_core.data.templates import TemplateError
from lavin_plugins.photos import image_source

NAMES = ("alpha", "beta_two", "gamma", "delta")


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_masks(url: str, seed: int, size: int = 32) -> dict[str, np.ndarray]:
    """A foreground-segmentation template folder at ``url``: random inputs, random-rectangle masks."""
    rng = np.random.default_rng(seed)
    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    masks = {}
    for name in NAMES:
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), bool)
        y, x = rng.integers(0, size // 2, 2)
        mask[y : y + size // 3, x : x + size // 4] = True
        fs.pipe_file(f"{root}/{name}_input.png", png(image))
        fs.pipe_file(f"{root}/{name}_target.png", png(np.repeat(mask[..., None] * np.uint8(255), 3, axis=-1)))
        masks[name] = mask
    return masks


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_template_folder_is_a_dataset_of_pairs(tmp_path, scheme):
    url = str(tmp_path / "masks") if scheme == "local" else "memory://datasets-test/masks"
    masks = write_masks(url, seed=1)
    dataset = TemplateFolder(url)
    assert len(dataset) == 4 and dataset.names == sorted(NAMES)
    example = dataset[1]
    assert example.id == "beta_two" and example.pair.input.shape == (3, 1, 32, 32)
    mask = (example.pair.target[0, 0] > 0).numpy()
    np.testing.assert_array_equal(mask, masks["beta_two"])
    resized = TemplateFolder(url, size=16)
    assert resized[0].pair.target.shape == (3, 1, 16, 16)
    with pytest.raises(IndexError, match="has 4 pairs"):
        dataset[4]


def test_missing_or_broken_folders_are_clear_errors(tmp_path):
    with pytest.raises(TemplateError, match="does not exist"):
        TemplateFolder(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "x_input.png").write_bytes(png(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(TemplateError, match="unmatched"):
        TemplateFolder(tmp_path / "half")


def test_folder_task_borrows_another_tasks_answers_and_metrics(tmp_path):
    masks = write_masks(str(tmp_path / "fg"), seed=2)
    task = registry.get_task("folder", path=str(tmp_path / "fg"), like="foreground_segmentation", size=32)
    assert task.name == "fg" and task.metrics == ("iou", "pixel_accuracy")
    examples = list(task.examples(6, seed=3))
    again = list(task.examples(6, seed=3))
    assert [e.id for e in examples] == [e.id for e in again]
    assert sorted(e.id for e in examples[:4]) == sorted(f"fg/{n}" for n in NAMES)  # one pass covers the folder
    assert all(e.id.endswith("~1") for e in examples[4:])  # then it reshuffles
    for example in examples:
        np.testing.assert_array_equal(example.answer, masks[example.id.split("/")[1].split("~")[0]])
        assert task.score(example.answer, example.answer)["iou"] == 1.0


def test_folder_task_without_like_answers_with_images(tmp_path):
    write_masks(str(tmp_path / "plain"), seed=4)
    task = registry.get_task("folder", path=str(tmp_path / "plain"))
    example = task.example(0, seed=0)
    assert example.answer.shape == (1, 32, 32, 3)
    assert torch.allclose(task.render(example.answer), example.pair.target)
    assert task.score(example.answer, example.answer)["ssim"] == pytest.approx(1.0)


def test_restoration_from_a_folder_of_photos(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(2):
        (tmp_path / f"photo{i}.png").write_bytes(png(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)))
    task = registry.get_task("denoising", size=32, source=str(tmp_path))
    a, b = task.example(0, seed=1), task.example(0, seed=1)
    assert torch.equal(a.pair.input, b.pair.input) and a.pair.target.shape == (3, 1, 32, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        registry.get_task("denoising", size=32, source=str(tmp_path / "empty")).example(0)


def test_skimage_source_needs_scikit_image():
    try:
        import skimage  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install scikit-image"):
            image_source("skimage")
    else:
        task = registry.get_task("deblurring", size=32, source="skimage")
        assert task.example(0).pair.input.shape == (3, 1, 32, 32)

"""Loading the authors' file layouts (and our own folders) takes the tensors without a second copy.

Small random checkpoints in the official layouts, written by ``random_checkpoint`` (the same code
as ``scripts/make_official_checkpoint.py``). "No second copy" is checked directly: every weight of
the loaded model lies inside the file's memory map (``/proc/self/maps``), so the process holds the
weights once, as page cache, whatever their size.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from lavin_core.checkpoint import write_safetensors
from lavin_core.jdit import JDiT, get_preset
from lavin_core.official import load_dit, load_vae
from lavin_core.official.random_checkpoint import (
    checked_layout,
    module_layout,
    random_tensor,
    read_listing,
    write_random_safetensors,
    write_random_torch_file,
)
from lavin_core.stvae import STVAE
from lavin_core.stvae import get_preset as vae_preset

DATA = Path(__file__).parent / "data"
DIT = get_preset("lavin-tiny", depth=2)
VAE = vae_preset("lavin-tiny")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def _mapped(path: Path) -> list[tuple[int, int]]:
    """Address ranges of this process mapped from ``path``."""
    target = os.path.realpath(path)
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _inside(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> bool:
    begin = tensor.untyped_storage().data_ptr()
    end = begin + tensor.untyped_storage().nbytes()
    return any(start <= begin and end <= stop for start, stop in ranges)


def _meta(build, config):
    with torch.device("meta"):
        return build(config)


def test_a_bf16_dit_loaded_in_bf16_shares_the_files_pages(tmp_path):
    path = tmp_path / "lavin_dit.safetensors"
    write_random_safetensors(path, module_layout(_meta(JDiT, DIT)), torch.bfloat16, seed=3)
    model = load_dit(str(path), DIT, dtype=torch.bfloat16)
    ranges = _mapped(path)
    assert ranges, "the file is not memory-mapped"
    tensors = model.state_dict()
    assert all(_inside(t, ranges) for t in tensors.values())  # not one weight copied
    name, tensor = next(iter(tensors.items()))
    assert torch.equal(tensor, random_tensor(name, tensor.shape, torch.bfloat16, seed=3))
    z_t, cond = torch.randn(1, 16, 1, 4, 4, dtype=torch.bfloat16), torch.randn(1, 16, 3, 4, 4, dtype=torch.bfloat16)
    assert torch.isfinite(model(z_t, torch.tensor([0.3]), cond).float()).all()


def test_a_cast_load_holds_only_the_cast_copy(tmp_path):
    path = tmp_path / "lavin_dit.safetensors"
    write_random_safetensors(path, module_layout(_meta(JDiT, DIT)), torch.bfloat16)
    model = load_dit(str(path), DIT)  # float32 from a bf16 file
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())
    assert not _mapped(path)  # read tensor by tensor (pread), no map left behind
    name, tensor = next(iter(model.state_dict().items()))
    assert torch.equal(tensor, random_tensor(name, tensor.shape, torch.bfloat16).float())


def test_the_official_vae_file_loads_memory_mapped(tmp_path):
    path = tmp_path / "stvae.pt"
    write_random_torch_file(path, module_layout(_meta(STVAE, VAE)), torch.float32, seed=1)
    vae = load_vae(str(path), VAE)
    ranges = _mapped(path)
    assert ranges and all(_inside(t, ranges) for t in vae.state_dict().values())
    name, tensor = next(iter(vae.state_dict().items()))
    assert torch.equal(tensor, random_tensor(name, tensor.shape, torch.float32, seed=1))
    half = load_vae(str(path), VAE, dtype=torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for t in half.state_dict().values())


def test_our_save_pretrained_folders_load_without_a_copy(tmp_path):
    torch.manual_seed(0)
    model = JDiT(DIT)
    model.save_pretrained(str(tmp_path / "dit"))
    loaded = JDiT.from_pretrained(str(tmp_path / "dit"))
    ranges = _mapped(tmp_path / "dit" / "model.safetensors")
    assert all(_inside(t, ranges) for t in loaded.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_the_official_layouts_match_the_authors_listings():
    dit = checked_layout(_meta(JDiT, get_preset("lavin-3.4b")), DATA / "lavin_dit_3.4b_state_dict.tsv")
    assert dit == read_listing(DATA / "lavin_dit_3.4b_state_dict.tsv")  # the listing's order
    assert sum(torch.Size(s).numel() for _, s in dit) == 3_398_976_064
    checked_layout(_meta(STVAE, vae_preset("lavin-3.4b")), DATA / "stvae_state_dict.tsv")
    with pytest.raises(ValueError, match="does not list the tensors"):
        checked_layout(_meta(JDiT, DIT), DATA / "lavin_dit_3.4b_state_dict.tsv")


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "x.safetensors"

    def tensor_of(name):
        if name == "b":
            raise RuntimeError("gather failed")
        return torch.ones(2)

    with pytest.raises(RuntimeError, match="gather failed"):
        write_safetensors(path, [("a", torch.float32, (2,)), ("b", torch.float32, (2,))], tensor_of)
    assert not list(tmp_path.iterdir())

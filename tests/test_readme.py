"""Every ```python snippet of the README runs as written.

The snippets of one README run in order in one namespace (a later one may use what an earlier one
made, as a reader following along would), in a fresh folder where each image file a snippet names
and that is not there yet is made first (64x64, random). A snippet that cannot run here is marked
in the README by the line ``<!-- readme-test: skip: REASON -->`` right above it; the reason shows
in the test report.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md"]
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
IMAGE_NAME = re.compile(r"""["']([\w./-]+\.(?:png|jpe?g|webp))["']""")


def snippets(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip_reason)`` for each ```python block of the Markdown file ``path``."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        skip = SKIP.fullmatch(before.strip())
        found.append((line, match.group(1), skip.group(1) if skip else None))
    return found


def make_named_images(code: str, folder: Path) -> None:
    """Write a random 64x64 image for each image file name in ``code`` that does not exist yet."""
    rng = np.random.default_rng(0)
    for name in IMAGE_NAME.findall(code):
        path = folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)


CASES = [(readme, line, code, skip) for readme in READMES for line, code, skip in snippets(readme)]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """One namespace and working folder per README, shared by its snippets in order."""
    return {readme: ({"__name__": "__readme__"}, tmp_path_factory.mktemp(readme.stem)) for readme in READMES}


def test_the_extractor_finds_the_snippets():
    assert len(CASES) >= 5
    assert all(code.strip() for _, _, code, _ in CASES)


@pytest.mark.slow
@pytest.mark.parametrize(("readme", "line", "code", "skip"), CASES,
                         ids=[f"{r.name}:{line}" for r, line, _, _ in CASES])
@pytest.mark.reliability  # issue 19: every README snippet runs as written (the Ensembles NameError)
def test_snippet_runs_as_written(readme, line, code, skip, sessions, monkeypatch):
    if skip:
        pytest.skip(f"{readme.name} line {line}: {skip}")
    namespace, folder = sessions[readme]
    monkeypatch.chdir(folder)
    make_named_images(code, folder)
    exec(compile(code, f"{readme.name}:{line}", "exec"), namespace)  # noqa: S102 - our own README

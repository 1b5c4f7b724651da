"""``lavin app`` in a real browser: the server started on a free local port in a subprocess, the
page driven by headless Chromium (the system's, through Playwright's CDP connection: nothing is
downloaded), as a user would: upload pairs and a query, predict, look at the image, download it.
Also: an empty upload is one line in the page, two requests at once both finish, and a browser
killed mid-request leaves the server answering.

``LAVIN_APP_SCREENSHOT=docs/app.png python -m pytest tests/test_app.py`` redraws the README's picture.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if importlib.util.find_spec("gradio") is None:
    pytest.skip('the app extra is not installed: pip install -e ".[dev,app]"', allow_module_level=True)
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed: apt-get install -y chromium", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402  (the dev extra; after the skips above)

pytestmark = pytest.mark.slow

#: The flags that work on a machine without a display, a GPU or a network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
FAST = {"steps": "4", "samples": "1"}
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_png(path: Path, size: tuple[int, int], seed: int) -> str:
    """A smooth random picture (height, width): something a model can be asked about."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BICUBIC).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-files")
    pairs = [write_png(root / f"{name}_{role}.png", (48, 48), seed)
             for seed, (name, role) in enumerate([(n, r) for n in ("cat", "dog") for r in ("input", "target")])]
    templates = root / "templates" / "mine"
    templates.mkdir(parents=True)
    for path in pairs:
        shutil.copy(path, templates)
    empty = root / "empty" / "bad_input.png"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    return {"pairs": pairs, "query": write_png(root / "photo.png", (90, 120), 7), "templates": str(templates.parent),
            "empty": str(empty), "root": root}


@pytest.fixture(scope="module")
def server(files):
    """The app (the shipped lavin-tiny) on a free port; yields (url, process)."""
    port = free_port()
    log = open(files["root"] / "server.log", "w+")
    code = "import sys; from lavin_core.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", code, "app", "--port", str(port), "--templates", files["templates"]],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 180
    try:
        while "lavin app:" not in (text := (files["root"] / "server.log").read_text()):
            assert process.poll() is None, f"the app exited with {process.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"the app did not start in 180 s:\n{text}"
            time.sleep(0.5)
        assert f"listening on 127.0.0.1:{port}, this machine only" in text, text
        yield f"http://127.0.0.1:{port}/", process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Browser:
    """A Chromium process of its own (fresh profile), driven through the DevTools protocol, so a
    test can kill it with SIGKILL as a crash would."""

    def __init__(self, playwright):
        self.profile = tempfile.mkdtemp(prefix="lavin-chromium-")
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.process.stderr:
            if match := re.search(r"DevTools listening on (ws://\S+)", line):
                break
        else:
            raise AssertionError(f"Chromium did not start (exit {self.process.wait()})")
        self.browser = playwright.chromium.connect_over_cdp(match[1])

    def page(self, url: str):
        page = self.browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#predict")
        return page

    def kill(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright):
    browser = Browser(playwright)
    yield browser
    browser.kill()


def upload(page, elem_id: str, paths):
    """Give the files to the component's file input and wait until the server has them."""
    with page.expect_response(lambda response: "/upload?" in response.url and response.ok):
        page.set_input_files(f"#{elem_id} input[type=file]", paths)


def set_number(page, elem_id: str, value: str):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def settings(page, **values):
    for name, value in {**FAST, **values}.items():
        set_number(page, name, value)


def predict(page) -> str:
    """Press Predict and wait for the status line to say how it went; returns that line."""
    before = page.inner_text("#status")
    page.click("#predict")
    page.wait_for_function(
        "before => { const s = document.querySelector('#status').innerText.trim();"
        " return s !== before && (s.startsWith('Done') || s.startsWith('Error')); }", arg=before)
    return page.inner_text("#status").strip()


def prediction_png(page) -> Image.Image:
    src = page.get_attribute("#prediction img", "src")
    with urllib.request.urlopen(src, timeout=30) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def new_scene(page):
    page.click("#scene")
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('scene')")
    page.wait_for_selector("#query img")


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status == 200


def test_own_pairs_and_photo_give_a_prediction_and_a_download(server, files, browser):
    page = browser.page(server[0])
    page.locator("#source").get_by_text("my uploads").click()
    upload(page, "uploads", files["pairs"])
    page.wait_for_function("() => document.querySelector('#uploads').innerText.includes('dog_target')")
    upload(page, "query", files["query"])
    page.wait_for_selector("#query img")
    settings(page)
    status = predict(page)
    assert status.startswith("Done: 120x90 prediction (processed at 64x48) from 2 example pairs, 4 steps"), status
    image = prediction_png(page)
    # a 120x90 photo processed at the model's 64 px, the prediction resized back; a picture, not a flat one
    assert image.size == (120, 90)
    assert np.asarray(image).std() > 2
    assert "Metrics need a query whose answer is known" in page.inner_text("#metrics")
    with page.expect_download() as download:
        page.click("#download")
    with Image.open(download.value.path()) as downloaded:
        assert np.array_equal(np.asarray(downloaded.convert("RGB")), np.asarray(image))


def test_a_generated_scene_is_scored(server, files, browser):
    page = browser.page(server[0])
    new_scene(page)
    settings(page, steps="19", samples="6")  # the model's recommended settings
    status = predict(page)
    assert status.startswith("Done: 64x64 prediction from 3 example pairs, 19 steps, 6 samples combined"), status
    table = page.inner_text("#metrics")
    assert "abs_rel" in table and "delta1" in table and "copy the query" in table
    abs_rel = float(re.search(r"abs_rel\D+([0-9.]+)", table)[1])
    assert 0 <= abs_rel < 0.5  # lavin-tiny's depth is far better than copying the query (0.6 and up)
    page.wait_for_timeout(500)  # let the gallery settle before the picture
    shot = page.screenshot(full_page=True)
    if target := os.environ.get("LAVIN_APP_SCREENSHOT"):
        partial = target + ".partial.png"
        Path(partial).write_bytes(shot)
        os.replace(partial, target)


def test_a_template_folder_from_the_list(server, browser):
    page = browser.page(server[0])
    page.locator("#source").get_by_text("template folder").click()
    new_scene(page)
    settings(page)
    set_number(page, "num_pairs", "2")
    assert predict(page).startswith("Done: 64x64 prediction from 2 example pairs"), page.inner_text("#status")


def test_an_empty_upload_is_one_line_in_the_page_and_the_server_goes_on(server, files, browser):
    page = browser.page(server[0])
    page.locator("#source").get_by_text("my uploads").click()
    upload(page, "uploads", [files["empty"], files["pairs"][1]])
    page.wait_for_function("() => document.querySelector('#uploads').innerText.includes('cat_target')")
    upload(page, "query", files["query"])
    page.wait_for_selector("#query img")
    settings(page)
    assert predict(page) == "Error: bad_input.png is empty (0 bytes); upload the image again"
    assert answers(server[0]) and server[1].poll() is None
    page = browser.page(server[0])
    upload(page, "query", files["empty"])  # an empty query: the same line
    settings(page)
    assert predict(page) == "Error: bad_input.png is empty (0 bytes); upload the image again"
    new_scene(page)
    assert predict(page).startswith("Done"), page.inner_text("#status")


def test_two_requests_at_once_both_finish(server, browser):
    pages = [browser.page(server[0]) for _ in range(2)]
    for page in pages:
        new_scene(page)
        settings(page)
    for page in pages:
        page.click("#predict")
    for page in pages:
        page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Done')")
        assert prediction_png(page).size == (64, 64)


def test_a_browser_killed_mid_request_leaves_the_server_answering(server, playwright, browser):
    doomed = Browser(playwright)
    page = doomed.page(server[0])
    new_scene(page)
    settings(page, steps="19", samples="6")
    page.click("#predict")
    page.wait_for_selector("text=sampling")  # the progress bar: the model is running
    doomed.kill()
    assert answers(server[0]) and server[1].poll() is None
    page = browser.page(server[0])
    new_scene(page)
    settings(page)
    assert predict(page).startswith("Done"), page.inner_text("#status")

"""The web server of ``lavin app``: one model, one prediction at a time, on this machine only by default.

Gradio's queue runs the Predict event one request at a time (``concurrency_limit=1`` in
``page``); other requests wait their turn in the queue (the page shows their place) instead of
running the model twice at once on the same CPU cores.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile

from lavin_core.errors import LavinError

#: What to install when Gradio is missing.
INSTALL = 'pip install "lavin-dit[app]"'
#: Requests waiting beyond this many are turned away (the page says the queue is full).
MAX_QUEUE = 32


def require_gradio() -> None:
    """A one-line ``LavinError`` naming the install command when the ``app`` extra is missing."""
    if importlib.util.find_spec("gradio") is None:
        raise LavinError(f"lavin app needs the app extra (Gradio): {INSTALL}")


def serve(predictor_factory, *, host: str, port: int, templates: dict[str, str], photos_dir: str | None = None,
          announce=print) -> None:
    """Load the model (``predictor_factory(out_dir)``), build the page and serve it until Ctrl+C."""
    require_gradio()
    # No usage statistics sent home, and nothing fetched: the app runs offline.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from lavin_core.app.page import CSS, THEME, build_page
    from lavin_core.app.queries import image_tasks, sample_photos

    with tempfile.TemporaryDirectory(prefix="lavin-app-") as scratch:
        predictor = predictor_factory(os.path.join(scratch, "predictions"))
        photos = sample_photos(photos_dir or os.path.join(scratch, "photos"))
        tasks = image_tasks(predictor.side, first=predictor.trained_tasks)
        page = build_page(predictor, tasks=tasks, templates=templates, photos=photos)
        page.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
        try:
            _, url, _ = page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                                    show_error=False, ssr_mode=False, footer_links=[], css=CSS, theme=THEME,
                                    allowed_paths=[scratch], max_file_size="25mb")
        except OSError as err:
            raise LavinError(f"cannot listen on {host}:{port} ({err}); pass another --port") from None
        where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else "every machine that can reach it"
        announce(f"lavin app: {predictor.name} at {url.rstrip('/')}/ (listening on {host}:{port}, {where}; "
                 f"Ctrl+C stops it)", flush=True)
        try:
            page.block_thread()
        finally:
            page.close()

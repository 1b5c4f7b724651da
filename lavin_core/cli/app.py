"""``lavin app``: in-context prediction in the browser, served on this machine.

    lavin app                                   # the shipped lavin-tiny, http://127.0.0.1:7860/
    lavin app --templates templates/ --port 8000
    lavin app --dit lavin_dit.safetensors --vae stvae.pt --device cuda

The page needs the optional ``app`` extra (Gradio): ``pip install "lavin-dit[app]"``.
"""

from __future__ import annotations

import argparse

from lavin_core.cli.sampling import add_model_arguments, model_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app",
        help="a local web page: pick a task or upload example pairs, give a query, see the prediction",
        description=__doc__.split("\n\n")[0],
        epilog=("The model is loaded once and serves one prediction at a time; other requests wait in a queue. "
                "--host 0.0.0.0 opens the page to other machines (there is no login: do so only on a trusted network)."),
    )
    add_model_arguments(parser)
    parser.add_argument("--templates", metavar="DIR",
                        help="a folder of template folders (NAME_input.png / NAME_target.png pairs) the page lists")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860, metavar="N", help="port to listen on (default: 7860)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lavin_core.app.server import require_gradio, serve
    from lavin_core.app.templates import template_folders

    require_gradio()  # before the model loads: a missing extra is said at once
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0 to 65535, got {args.port}")
    templates = template_folders(args.templates)
    serve(lambda out_dir: _predictor(args, out_dir), host=args.host, port=args.port, templates=templates)
    return 0


def _predictor(args: argparse.Namespace, out_dir: str):
    from lavin_core.app.predictor import Predictor
    from lavin_core.pipeline import load_pipeline

    pipe = load_pipeline(model_spec(args), dit=args.dit, vae=args.vae, device=args.device, precision=args.precision)
    return Predictor(pipe, out_dir)

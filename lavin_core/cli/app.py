"""``lavin app``: in-context prediction in the browser, served on this machine.

    lavin app                                   # the shipped lavin-tiny, http://127.0.0.1:7860/
    lavin app --templates templates/ --port 8000
    lavin app --dit lavin_dit.safetensors --vae stvae.pt --device cuda

The page needs the optional ``app`` extra (Gradio): ``pip install "lavin-dit[app]"``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app",
        help="a local web page: pick a task or upload example pairs, give a query, see the prediction",
        description=__doc__.split("\n\n")[0],
        epilog=("The model is loaded once and serves one prediction at a time; other requests wait in a queue. "
                "--host 0.0.0.0 opens the page to other machines (there is no login: do so only on a trusted network)."),
    )
    parser.add_argument("--model", metavar="NAME",
                        help="shipped model name or model folder (default: lavin-tiny unless --dit and --vae are given)")
    parser.add_argument("--dit", metavar="PATH", help="J-DiT checkpoint, as for `lavin run`")
    parser.add_argument("--vae", metavar="PATH", help="ST-VAE checkpoint, as for `lavin run`")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
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
    from lavin_core.app.predictor import ModelInfo, Predictor
    from lavin_core.cli.run import model_spec
    from lavin_core.pipeline import load_pipeline
    from lavin_core.pretrained import get_model

    spec = model_spec(args)
    pipe = load_pipeline(spec, dit=args.dit, vae=args.vae, device=args.device)
    if spec is not None and args.dit is None and args.vae is None:
        folder = get_model(spec)
        info = ModelInfo(name=folder.name, image_size=folder.index.get("image_size"),
                         ensemble_size=folder.ensemble_size or 1, trained_tasks=folder.trained_tasks or ())
    else:
        info = ModelInfo(name=f"{spec or 'custom'} (dit {args.dit or 'of the model'}, vae {args.vae or 'of the model'})")
    return Predictor(pipe, info, out_dir)

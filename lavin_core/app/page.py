"""The Gradio page of ``lavin app``: choose a task or bring example pairs, give a query, predict.

Left: where the example pairs come from (a task's examples, uploaded ``NAME_input.png`` /
``NAME_target.png`` files, or a template folder), the query (upload one, generate a scene with a
known answer, or pick a sample photo) and the sampling settings. Right: the context, the
prediction beside it, a download button, a status line (the one-line message when the input is
bad) and the task's metrics when the query's ground truth is known.
"""

from __future__ import annotations

import logging
import traceback

import gradio as gr

from lavin_core.app.predictor import MAX_SAMPLES, Predictor
from lavin_core.app.queries import generated_query
from lavin_core.app.request import (
    MAX_PAIRS, NO_TASK, PAIR_SOURCES, PAIRS_FROM_TASK, PAIRS_FROM_TEMPLATE, PAIRS_FROM_UPLOADS, AppRequest, AppResult,
)
from lavin_core.data.images import to_pil
from lavin_core.errors import LavinError

log = logging.getLogger("lavin.app")

#: Small images are drawn large: crisp pixels rather than a blur.
CSS = """
#prediction img, #query img { width: 100%; height: 100%; object-fit: contain; }
#prediction img, #context img, #query img { image-rendering: pixelated; }
#status p { font-size: 1.05em; }
"""
#: No web fonts: the page must work on a machine without internet access.
THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def read_by_lavin(image: gr.Image) -> gr.Image:
    """``image`` handing each uploaded file to the prediction as a path, unopened, so that LaVin's
    own reader sees it and an empty or corrupt file gets LaVin's one-line message instead of the
    web framework's generic error. (An instance attribute, not a subclass: Gradio writes a type
    stub file beside the module of every component subclass.)"""
    preprocess = image.preprocess

    def keep_path(payload):
        if payload is not None and payload.path is not None:
            return str(payload.path)
        return preprocess(payload)  # pasted data without a file: Gradio writes one

    image.preprocess = keep_path
    return image


def build_page(predictor: Predictor, *, tasks: list[str], templates: dict[str, str], photos: list[str]) -> gr.Blocks:
    """The page for ``predictor``'s model; ``tasks`` in the task list (the first one chosen),
    ``templates`` label -> folder, ``photos`` paths of sample photos."""
    sources = [s for s in PAIR_SOURCES if s != PAIRS_FROM_TEMPLATE or templates]
    side = predictor.side
    # delete_cache: files the server keeps for the page (uploads, predictions) go after an hour
    with gr.Blocks(title="LaVin", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(
            f"# LaVin: one vision model, many tasks\n"
            f"Pick a task (or bring a few example pairs), give a query image, and the model **{predictor.name}** "
            f"draws the query's target. It works at {side} px: queries are processed at that size and "
            f"the prediction resized back to the query's. "
            f"Images only: video clips are not offered on this page yet."
        )
        truth = gr.State(None)
        scenes = gr.State(0)
        with gr.Row():
            with gr.Column(scale=1):
                task = gr.Dropdown([*tasks, NO_TASK], value=tasks[0] if tasks else NO_TASK, label="Task",
                                   elem_id="task")
                source = gr.Radio(sources, value=PAIRS_FROM_TASK if tasks else PAIRS_FROM_UPLOADS,
                                  label="Example pairs from", elem_id="source")
                uploads = gr.File(file_count="multiple", visible=not tasks, elem_id="uploads",
                                  label=f"Your example pairs: NAME_input.png + NAME_target.png, 1 to {MAX_PAIRS} pairs")
                template = gr.Dropdown(list(templates), value=next(iter(templates), None), visible=False,
                                       label="Template folder", elem_id="template")
                num_pairs = gr.Slider(1, MAX_PAIRS, value=3, step=1, label="Example pairs in the context",
                                      elem_id="num_pairs")
                query = read_by_lavin(gr.Image(type="filepath", format="png", label="Query", height=256,
                                               sources=["upload", "clipboard"], elem_id="query"))
                scene = gr.Button("New scene from the task (its answer is known: the page scores it)",
                                  elem_id="scene")
                if photos:
                    gr.Examples([[p] for p in photos], inputs=[query], label="Sample photos")
                with gr.Accordion("Settings", open=True):
                    with gr.Row():
                        steps = gr.Slider(1, 50, value=predictor.num_steps, step=1, label="Steps", elem_id="steps")
                        guidance = gr.Slider(0, 10, value=predictor.pipe.guidance_scale, step=0.1,
                                             label="Guidance (1 = off)", elem_id="guidance")
                    with gr.Row():
                        samples = gr.Slider(1, MAX_SAMPLES, value=predictor.ensemble_size, step=1, elem_id="samples",
                                            label="Samples (combined into one answer)")
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id="seed")
                    fit = gr.Checkbox(True, label=f"Process the query at the model's size ({side} px)", elem_id="fit")
                run = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column(scale=1):
                status = gr.Markdown("Choose a task and a query, then press Predict.", elem_id="status")
                with gr.Row():
                    context = gr.Gallery(label="Context: example pairs, then the query", columns=2, height=380,
                                         object_fit="contain", format="png", elem_id="context")
                    prediction = gr.Image(label="Prediction", format="png", interactive=False, height=380,
                                          elem_id="prediction")
                download = gr.DownloadButton("Download the prediction (PNG)", visible=False, elem_id="download")
                metrics = gr.Markdown(elem_id="metrics")

        source.change(_show_source, source, [uploads, template, num_pairs])
        scene.click(_new_scene(side), [task, scenes], [query, truth, scenes, status])
        run.click(_predict(predictor, templates),
                  [task, source, uploads, template, num_pairs, query, steps, guidance, samples, seed, fit, truth],
                  [status, context, prediction, download, metrics],
                  concurrency_limit=1, concurrency_id="model")
    return page


def _show_source(source: str):
    return (gr.update(visible=source == PAIRS_FROM_UPLOADS), gr.update(visible=source == PAIRS_FROM_TEMPLATE),
            gr.update(visible=source != PAIRS_FROM_UPLOADS))


def _new_scene(side: int):
    def new_scene(task: str, count: int):
        if task == NO_TASK:
            return gr.update(), None, count, "**Error:** choose a task first: its scene generator makes the query"
        try:
            image, truth = generated_query(task, count, size=side)
        except (LavinError, ValueError) as err:
            return gr.update(), None, count, f"**Error:** {err}"
        return image, truth, count + 1, f"A new {task} scene (#{count + 1}); its true answer is known."

    return new_scene


def _predict(predictor: Predictor, templates: dict[str, str]):
    def predict(task, source, uploads, template, num_pairs, query, steps, guidance, samples, seed, fit, truth,
                progress=gr.Progress()):
        try:
            request = AppRequest(
                pair_source=source, task=task or NO_TASK, query=query, uploads=uploads or (),
                template=templates.get(template), num_pairs=int(num_pairs), resize=bool(fit),
                num_steps=int(steps), guidance_scale=float(guidance), num_samples=int(samples),
                seed=int(seed or 0), truth=truth,
            )
            result = predictor.predict(request, lambda done, total: progress((done, total), desc="sampling"))
        except (LavinError, ValueError, FileNotFoundError) as err:
            return _failed(str(err))
        except Exception as err:  # a bug: say so in the page, keep the traceback in the server's log
            log.error("lavin app: prediction failed\n%s", traceback.format_exc())
            return _failed(f"unexpected {type(err).__name__} (a bug; the server's log has the traceback): {err}")
        return _shown(result)

    return predict


def _failed(message: str):
    line = " ".join(message.split())
    return f"**Error:** {line}", None, None, gr.update(visible=False, value=None), ""


def _shown(result: AppResult):
    cells = []
    for index, pair in enumerate(result.pairs, 1):
        cells += [(to_pil(pair.input)[0], f"input {index}"), (to_pil(pair.target)[0], f"target {index}")]
    cells.append((to_pil(result.query)[0], "query"))
    if result.truth is not None:
        cells.append((to_pil(result.truth)[0], "true answer (not shown to the model)"))
    return (f"Done: {result.summary}.", cells, result.png, gr.update(visible=True, value=result.png),
            metrics_table(result))


def metrics_table(result: AppResult) -> str:
    """The task's metrics as a Markdown table, or a line saying why there are none."""
    if not result.metrics:
        return "Metrics need a query whose answer is known: press *New scene from the task*."
    lines = ["| metric | prediction | copy the query |", "|---|---|---|"]
    for name, (ours, copy) in result.metrics.items():
        arrow = "↑" if result.higher_is_better.get(name, True) else "↓"
        lines.append(f"| {name} {arrow} | {ours:.3f} | {copy:.3f} |")
    return "\n".join(lines)

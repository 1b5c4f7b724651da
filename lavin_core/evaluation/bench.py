"""``lavin bench``: a model against three training-free baselines on fresh examples of each task.

    >>> result = run_bench(load_pipeline("lavin-tiny"), ["depth", "edges"], count=16)
    >>> print(markdown_table(result))

For each task, ``count`` cases (``draw_cases``, seed 2026 by default: examples never
used in training) are predicted by the model and by each baseline of ``BASELINES``,
every prediction read back with ``task.read`` and scored with ``task.score``; scores are means
over cases. A task "wins" when the model beats the best baseline on the task's main metric.
Tasks the model was not trained on are marked held out.

Video tasks whose targets match their query frame by frame also get the ``per_frame_model``
baseline (``per_frame``): the same model run on each frame alone, as an image task. Beating
it, above all on the temporal metrics, is what joint space-time attention is for; the result
counts the tasks where the model's temporal metric beats it (``temporal_wins_vs_per_frame``).

Beside them, ``vae_ceiling`` scores the true target after a round trip through the model's
ST-VAE (``InContextPipeline.reconstruct``): not a baseline but the model's upper bound, which
shows whether a task is limited by the autoencoder or by the denoiser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lavin_core.evaluation.cases import BASELINES, EVAL_SEED, better, combine_samples, draw_cases, json_ready, mean_scores, predict_samples, score
from lavin_core.evaluation.per_frame import PER_FRAME, has_per_frame_baseline, per_frame_predictions
from lavin_core.samplers import sampler_name

#: The reference column: the true target through the ST-VAE and back (the model's upper bound).
CEILING = "vae_ceiling"


def run_bench(
    pipe,
    tasks: Sequence[str],
    *,
    model_name: str = "model",
    trained_tasks: Sequence[str] | None = None,
    count: int = 16,
    num_pairs: int = 3,
    seed: int = EVAL_SEED,
    size: int = 64,
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    temperature: float | None = None,
    ensemble_size: int = 1,
    ceiling: bool = True,
    per_frame: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores of the model and of each baseline on every task in ``tasks`` (a JSON-ready dict).

    ``trained_tasks``: the tasks the model was trained on (None: unknown, no task is marked).
    ``ensemble_size``: samples per case, combined into one prediction by ``task.combine``.
    ``ceiling``: also score the ``vae_ceiling`` reference (see the module docstring).
    ``per_frame``: score the ``per_frame_model`` baseline on the video tasks that have one.
    """
    import registry

    if not tasks:
        raise ValueError("no tasks to benchmark; name some with --tasks (see `lavin tasks`)")
    built = {name: registry.get_task(name, size=size) for name in tasks}
    cases = {name: draw_cases(task, count, num_pairs=num_pairs, seed=seed) for name, task in built.items()}
    every = [case for name in tasks for case in cases[name]]
    samples = predict_samples(pipe, every, ensemble_size, seed=seed, num_steps=num_steps,
                                         guidance_scale=guidance_scale, temperature=temperature, progress=progress,
                                         desc=f"bench {model_name}")
    results: dict[str, Any] = {}
    position = 0
    for name, task in built.items():
        mine = [combine_samples(task, s) for s in samples[position : position + count]]
        position += count
        methods = {model_name: mine, **{b: [f(case) for case in cases[name]] for b, f in BASELINES.items()}}
        if per_frame and has_per_frame_baseline(cases[name][0]):
            methods[PER_FRAME] = per_frame_predictions(
                pipe, task, cases[name], ensemble_size, seed=seed, num_steps=num_steps, guidance_scale=guidance_scale,
                temperature=temperature, progress=progress, desc=f"bench {name} per frame")
        if ceiling:
            methods[CEILING] = pipe.reconstruct([case.target for case in cases[name]])
        scores = {
            method: mean_scores(
                [score(task, p, case.answer) for p, case in zip(preds, cases[name])], task.metrics)
            for method, preds in methods.items()
        }
        results[name] = task_summary(task.metrics, dict(task.higher_is_better), scores, model_name,
                                     held_out=None if trained_tasks is None else name not in trained_tasks,
                                     references=(CEILING,))
    trained = [r for r in results.values() if r["held_out"] is not True]
    with_per_frame = [r for r in results.values() if PER_FRAME in r["scores"]]
    return {
        "model": model_name,
        "seed": seed,
        "count": count,
        "num_pairs": num_pairs,
        "image_size": size,
        "sampler": sampler_name(pipe.sampler),
        "num_steps": len(pipe.sampler.timesteps(num_steps)) - 1,
        "guidance_scale": pipe.guidance_scale if guidance_scale is None else guidance_scale,
        "temperature": pipe.temperature if temperature is None else temperature,
        "ensemble_size": ensemble_size,
        "baselines": [*BASELINES, *([PER_FRAME] if with_per_frame else [])],
        "references": [CEILING] if ceiling else [],
        "tasks": results,
        "wins_on_trained": sum(bool(r["wins"]) for r in trained),
        "trained_count": len(trained),
        "temporal_wins_vs_per_frame": sum(temporal_win(r, model_name) for r in with_per_frame),
        "per_frame_count": len(with_per_frame),
    }


def temporal_win(entry: dict[str, Any], model_name: str) -> bool:
    """Whether the model beats the per-frame baseline on the task's temporal metric (its first ``temporal*``)."""
    metric = next((m for m in entry["metrics"] if m.startswith("temporal")), None)
    if metric is None or PER_FRAME not in entry["scores"]:
        return False
    return better(entry["scores"][model_name][metric], entry["scores"][PER_FRAME][metric],
                  higher_is_better=entry["higher_is_better"][metric])


def task_summary(metrics: Sequence[str], higher_is_better: dict[str, bool], scores: dict[str, dict[str, float]],
                 model_name: str, *, held_out: bool | None, references: Sequence[str] = ()) -> dict[str, Any]:
    """One task's entry: its scores, the best baseline on the main metric, and whether the model wins.

    Every method in ``scores`` but the model and the ``references`` (such as ``vae_ceiling``) is a baseline.
    """
    main = metrics[0]
    up = higher_is_better[main]
    baselines = [m for m in scores if m != model_name and m not in references]
    best = baselines[0]
    for method in baselines[1:]:
        if better(scores[method][main], scores[best][main], higher_is_better=up):
            best = method
    return {
        "main_metric": main,
        "metrics": list(metrics),
        "higher_is_better": {m: higher_is_better[m] for m in metrics},
        "held_out": held_out,
        "scores": scores,
        "best_baseline": best,
        "wins": better(scores[model_name][main], scores[best][main], higher_is_better=up),
    }


# ---------------------------------------------------------------------------------------------
# tables


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3f}"


def table_rows(result: dict[str, Any], *, bold_main: str = "") -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per task and metric, the main metric first and marked with ``*``."""
    methods = [result["model"], *result["baselines"], *result["references"]]
    headers = ["task", "metric", *methods, "wins", "trained"]
    rows = []
    for name, entry in result["tasks"].items():
        for metric in entry["metrics"]:
            main = metric == entry["main_metric"]
            arrow = "↑" if entry["higher_is_better"][metric] else "↓"
            label = f"{metric} {arrow}" + (" *" if main else "")
            # a baseline a task does not have (per_frame_model on image tasks) is shown as "-"
            values = [_number(entry["scores"][m][metric]) if m in entry["scores"] else "-" for m in methods]
            if main and bold_main:
                best = entry["best_baseline"]
                values = [f"{bold_main}{v}{bold_main}" if m == best else v for m, v in zip(methods, values)]
            held = entry["held_out"]
            trained = "held out" if held else ("yes" if held is False else "?")
            wins = ("yes" if entry["wins"] else "no") if main else ""
            rows.append([name if main else "", label, *values, wins, trained if main else ""])
    return headers, rows


def markdown_table(result: dict[str, Any]) -> str:
    """The bench table in Markdown (the best baseline's main score in bold), with a header line."""
    headers, rows = table_rows(result, bold_main="**")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    summary = (f"{result['model']} beats the best baseline on the main metric (*) of {result['wins_on_trained']} of "
               f"{result['trained_count']} trained tasks; {result['count']} cases per task, {result['num_pairs']} "
               f"example pairs, seed {result['seed']}, {result['sampler']} sampler, {result['num_steps']} steps, "
               f"guidance {result['guidance_scale']}, temperature {result.get('temperature', 1.0)}, "
               f"{_samples_text(result.get('ensemble_size', 1))}.")
    if result.get("per_frame_count"):
        summary += (f" On the temporal metric it beats the per-frame model (each frame alone) on "
                    f"{result['temporal_wins_vs_per_frame']} of {result['per_frame_count']} video tasks.")
    return "\n".join([summary, "", *lines]) + "\n"


def text_table(result: dict[str, Any]) -> str:
    from lavin_core.evaluation.table import format_table

    headers, rows = table_rows(result)
    return format_table(headers, rows)


def write_bench(result: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``bench.json`` and ``bench.md`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(json_ready(result), indent=2) + "\n")
    md_path.write_text(markdown_table(result))
    return json_path, md_path


def _samples_text(ensemble_size: int) -> str:
    return "one sample per case" if ensemble_size == 1 else f"{ensemble_size} samples per case combined by the task"

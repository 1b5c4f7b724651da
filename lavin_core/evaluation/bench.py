"""``lavin bench``: a model against training-free baselines on fresh examples of each task.

    >>> result = run_bench(load_pipeline("lavin-tiny"), ["depth", "edges"], count=16)
    >>> print(markdown_table(result))
    >>> sweep = run_bench(pipe, ["map_hue_rotate"], num_pairs=(1, 2, 4))["pairs_sweep"]

For each task, ``count`` cases (``draw_cases``, seed 2026 by default: examples never
used in training; a task drawn per context gets a fresh instance per case) are predicted by
the model and by each baseline of ``BASELINES``, every prediction read back with the case's
task instance and scored with its ``score``; scores are means over cases. A task "wins" when
the model beats the best baseline on the task's main metric. Tasks the model was not trained on
are marked held out. With several ``num_pairs`` the cases are drawn once with the most pairs
and cut to each count (the same queries throughout): ``pairs_sweep`` holds the main score of
the model and of the best baseline per count, and the table is the one with the most pairs.

Video tasks whose targets match their query frame by frame also get the ``per_frame_model``
baseline (``per_frame``): the same model run on each frame alone, as an image task. Beating
it, above all on the temporal metrics, is what joint space-time attention is for; the result
counts the tasks where the model's temporal metric beats it (``temporal_wins_vs_per_frame``).

Beside them, ``vae_ceiling`` scores the true target after a round trip through the model's
ST-VAE (``InContextPipeline.reconstruct``): not a baseline but the model's upper bound, which
shows whether a task is limited by the autoencoder or by the denoiser.

``bench.json`` (``SCHEMA`` names its version; keys added in a minor change never move):
    schema, model, seed, count, num_pairs (the table's), image_size, sampler, num_steps,
    sampling_dtype (the J-DiT's matmuls: float32, bfloat16, ...), guidance_scale, temperature,
    ensemble_size, adapt_steps, adapt_lr, context_copy, baselines, references, task_options;
    tasks: {name: {main_metric, metrics, higher_is_better, held_out, split, plugin, scores:
    {method: {metric: value or null}}, best_baseline, wins}};
    wins_on_trained, trained_count, wins_on_held_out, held_out_count, wins_on_unknown, unknown_count
    (tasks neither the model's task list nor their declared split places),
    plugins: {plugin: {wins, count}}; pairs_sweep (only with several num_pairs):
    {num_pairs: [K...], tasks: {name: {main_metric, model: [...], best_baseline: [...]}}}.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lavin_core.atomic import write_text
from lavin_core.evaluation.cases import (BASELINES, EVAL_SEED, Case, better, build_task, combine_samples, draw_cases,
                                         json_ready, mean_scores, predict_samples, score)
from lavin_core.evaluation.per_frame import PER_FRAME, has_per_frame_baseline, per_frame_predictions
from lavin_core.samplers import sampler_name
from lavin_core.samplers.options import SamplingOptions

#: The reference column: the true target through the ST-VAE and back (the model's upper bound).
CEILING = "vae_ceiling"
#: The version of the ``bench.json`` layout (see the module docstring).
SCHEMA = "lavin-bench/2"
#: ``--split`` values.
SPLITS = ("trained", "held-out", "all")


def run_bench(
    pipe,
    tasks: Sequence[str],
    *,
    model_name: str = "model",
    trained_tasks: Sequence[str] | None = None,
    task_options: dict[str, dict[str, Any]] | None = None,
    count: int = 16,
    num_pairs: int | Sequence[int] = 3,
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

    ``trained_tasks``: the tasks the model was trained on (None: unknown; each task is then marked by
    its declared ``split``, if it has one).
    ``task_options``: task name -> options its factory takes (``--task-option``).
    ``num_pairs``: example pairs per case, or several counts for the pairs sweep.
    ``ensemble_size``: samples per case, combined into one prediction by ``task.combine``.
    ``ceiling``: also score the ``vae_ceiling`` reference (see the module docstring).
    ``per_frame``: score the ``per_frame_model`` baseline on the video tasks that have one.
    """
    import registry

    if not tasks:
        raise ValueError("no tasks to benchmark; name some with --tasks (see `lavin tasks`)")
    counts = sorted({int(num_pairs)} if isinstance(num_pairs, int) else {int(k) for k in num_pairs})
    if not counts or counts[0] < 1:
        raise ValueError(f"num_pairs must be at least 1, got {num_pairs!r}")
    options = {name: dict((task_options or {}).get(name, {})) for name in tasks}
    built = {name: build_task(name, size=size, options=options[name]) for name in tasks}
    drawn = {name: draw_cases(task, count, num_pairs=counts[-1], seed=seed) for name, task in built.items()}
    ceilings = ({name: pipe.reconstruct([c.target for c in cases], [c.query for c in cases])
                 for name, cases in drawn.items()} if ceiling else {})
    sweep: dict[str, Any] = {"num_pairs": counts, "tasks": {}}
    for k in counts:
        cases = {name: [c.with_pairs(k) for c in found] for name, found in drawn.items()}
        every = [case for name in tasks for case in cases[name]]
        samples = predict_samples(pipe, every, ensemble_size, seed=seed, num_steps=num_steps,
                                  guidance_scale=guidance_scale, temperature=temperature, progress=progress,
                                  desc=f"bench {model_name}" + (f" ({k} pairs)" if len(counts) > 1 else ""))
        results: dict[str, Any] = {}
        for position, name in enumerate(tasks):
            mine = [combine_samples(c.instance, s) for c, s in zip(cases[name], samples[position * count:])]
            extra = {}
            if per_frame and has_per_frame_baseline(cases[name][0]):
                extra[PER_FRAME] = per_frame_predictions(
                    pipe, built[name], cases[name], ensemble_size, seed=seed, num_steps=num_steps,
                    guidance_scale=guidance_scale, temperature=temperature, progress=progress,
                    desc=f"bench {name} per frame")
            results[name] = _task_result(built[name], cases[name], mine, extra, ceilings.get(name), model_name,
                                         trained_tasks, registry.default_registry().task_entry(name).plugin)
        for name, entry in results.items():
            line = sweep["tasks"].setdefault(name, {"main_metric": entry["main_metric"], "model": [],
                                                    "best_baseline": []})
            line["model"].append(entry["scores"][model_name][entry["main_metric"]])
            line["best_baseline"].append(entry["scores"][entry["best_baseline"]][entry["main_metric"]])
    result = {
        "schema": SCHEMA,
        "model": model_name,
        "seed": seed,
        "count": count,
        "num_pairs": counts[-1],
        "image_size": size,
        "sampler": sampler_name(pipe.sampler),
        "num_steps": pipe.step_count(SamplingOptions(num_steps=num_steps)),
        "sampling_dtype": str(pipe.sampling_dtype).removeprefix("torch."),
        "guidance_scale": pipe.guidance_scale if guidance_scale is None else guidance_scale,
        "temperature": pipe.temperature if temperature is None else temperature,
        "ensemble_size": ensemble_size,
        "adapt_steps": pipe.defaults.adapt_steps or 0,
        "adapt_lr": pipe.defaults.adapt_lr,
        "context_copy": bool(pipe.defaults.context_copy),
        "baselines": [*BASELINES, *([PER_FRAME] if any(PER_FRAME in r["scores"] for r in results.values()) else [])],
        "references": [CEILING] if ceiling else [],
        "task_options": {name: o for name, o in options.items() if o},
        "tasks": results,
        **summary_counts(results, model_name),
    }
    if len(counts) > 1:
        result["pairs_sweep"] = sweep
    return result


def _task_result(task, cases: Sequence[Case], predictions, extra: dict[str, list], ceiling, model_name: str,
                 trained_tasks: Sequence[str] | None, plugin: str) -> dict[str, Any]:
    methods = {model_name: predictions, **{b: [f(case) for case in cases] for b, f in BASELINES.items()}, **extra}
    if ceiling is not None:
        methods[CEILING] = ceiling
    scores = {
        method: mean_scores([score(case.instance, p, case.answer) for p, case in zip(preds, cases)], task.metrics)
        for method, preds in methods.items()
    }
    split = getattr(task, "split", None)
    entry = task_summary(task.metrics, dict(task.higher_is_better), scores, model_name,
                         held_out=held_out_status(task.name, split, trained_tasks), references=(CEILING,))
    return {**entry, "split": split, "plugin": plugin}


def held_out_status(name: str, split: str | None, trained_tasks: Sequence[str] | None) -> bool | None:
    """Whether the model never trained on task ``name``: from the model's task list when it has one
    (a replaced J-DiT has none), else from the task's declared ``split``; None when neither says."""
    if trained_tasks is not None:
        return name not in trained_tasks
    return {"trained": False, "held-out": True}.get(split)


def summary_counts(results: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Wins and task counts on the trained tasks, on the held-out ones, per plugin, and against the
    per-frame model on the video tasks."""
    with_per_frame = [r for r in results.values() if PER_FRAME in r["scores"]]
    trained = [r for r in results.values() if r["held_out"] is False]
    held_out = [r for r in results.values() if r["held_out"] is True]
    unknown = [r for r in results.values() if r["held_out"] is None]
    plugins: dict[str, dict[str, int]] = {}
    for entry in results.values():
        counts = plugins.setdefault(entry.get("plugin") or "?", {"wins": 0, "count": 0})
        counts["wins"] += bool(entry["wins"])
        counts["count"] += 1
    return {
        "wins_on_trained": sum(bool(r["wins"]) for r in trained),
        "trained_count": len(trained),
        "wins_on_held_out": sum(bool(r["wins"]) for r in held_out),
        "held_out_count": len(held_out),
        "wins_on_unknown": sum(bool(r["wins"]) for r in unknown),
        "unknown_count": len(unknown),
        "plugins": plugins,
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


def split_tasks(available: Sequence[str], split: str, trained: Sequence[str] | None) -> list[str]:
    """The tasks of ``available`` in ``split``: "trained" (the model's own list, else those declared
    ``Task.split == "trained"``), "held-out" (declared held out, or undeclared and not the model's),
    or "all"; trained tasks first, in training order."""
    import registry

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    declared = {name: getattr(registry.default_registry().task_entry(name).factory, "split", None)
                for name in available}
    mine = [t for t in (trained or ()) if t in declared]
    in_trained = mine if trained is not None else [n for n in available if declared[n] == "trained"]
    in_held_out = [n for n in available if n not in in_trained
                   and (declared[n] == "held-out" or (declared[n] is None and trained is not None))]
    if split == "trained":
        return in_trained
    if split == "held-out":
        return in_held_out
    return in_trained + [n for n in available if n not in in_trained]


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
    if "pairs_sweep" in result:
        sweep = result["pairs_sweep"]
        lines += ["", "Main metric against the number of example pairs (same queries):", "",
                  "| task | metric | method | " + " | ".join(f"{k} pairs" for k in sweep["num_pairs"]) + " |",
                  "|" + "---|" * (3 + len(sweep["num_pairs"]))]
        for name, line in sweep["tasks"].items():
            lines.append(f"| {name} | {line['main_metric']} | {result['model']} | " + " | ".join(map(_number, line["model"])) + " |")
            lines.append("|  |  | best baseline | " + " | ".join(map(_number, line["best_baseline"])) + " |")
    summary = (f"{summary_line(result)}; {result['count']} cases per task, {result['num_pairs']} "
               f"example pairs, seed {result['seed']}, {result['sampler']} sampler, {result['num_steps']} steps"
               f"{_dtype_text(result.get('sampling_dtype', 'float32'))}, "
               f"guidance {result['guidance_scale']}, temperature {result.get('temperature', 1.0)}, "
               f"{_samples_text(result.get('ensemble_size', 1))}{_adapt_text(result)}{_copy_text(result)}.")
    if result.get("per_frame_count"):
        summary += (f" On the temporal metric it beats the per-frame model (each frame alone) on "
                    f"{result['temporal_wins_vs_per_frame']} of {result['per_frame_count']} video tasks.")
    return "\n".join([summary, "", *lines]) + "\n"


def summary_line(result: dict[str, Any]) -> str:
    """One sentence: wins on trained and held-out tasks, and the plugin tasks among them."""
    line = (f"{result['model']} beats the best baseline on the main metric (*) of {result['wins_on_trained']} of "
            f"{result['trained_count']} trained tasks")
    if result.get("held_out_count"):
        line += f" and of {result['wins_on_held_out']} of {result['held_out_count']} held-out tasks"
    if result.get("unknown_count"):
        line += (f" and of {result['wins_on_unknown']} of {result['unknown_count']} tasks it may or may not have "
                 "trained on (no task list for this J-DiT, no declared split)")
    others = {p: c for p, c in result.get("plugins", {}).items() if p != "builtin"}
    if others:
        line += " (plugin tasks: " + ", ".join(f"{p} {c['wins']} of {c['count']}" for p, c in others.items()) + ")"
    return line


def sweep_table(result: dict[str, Any]) -> str:
    """The pairs sweep as text: per task, the model's main score and the best baseline's at each count."""
    from lavin_core.evaluation.table import format_table

    sweep = result["pairs_sweep"]
    headers = ["task", "main metric", "method", *[f"{k} pairs" for k in sweep["num_pairs"]]]
    rows = []
    for name, line in sweep["tasks"].items():
        rows.append([name, line["main_metric"], result["model"], *map(_number, line["model"])])
        rows.append(["", "", "best baseline", *map(_number, line["best_baseline"])])
    return format_table(headers, rows)


def text_table(result: dict[str, Any]) -> str:
    from lavin_core.evaluation.table import format_table

    headers, rows = table_rows(result)
    return format_table(headers, rows)


def write_bench(result: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``bench.json`` and ``bench.md`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    # Each file is written atomically: a killed bench leaves the previous file or the new one.
    write_text(json_path, json.dumps(json_ready(result), indent=2) + "\n")
    write_text(md_path, markdown_table(result))
    return json_path, md_path


def _dtype_text(dtype: str) -> str:
    return "" if dtype == "float32" else f" (J-DiT in {dtype})"


def _adapt_text(result: dict[str, Any]) -> str:
    steps = result.get("adapt_steps", 0)
    return (f", the J-DiT adapted {steps} steps to each context's pairs (learning rate {result['adapt_lr']:g}; one "
            "pair: not adapted)") if steps else ""


def _copy_text(result: dict[str, Any]) -> str:
    return ", the query's pixels kept where the pairs keep their input's (context copy)" if result.get("context_copy") \
        else ""


def _samples_text(ensemble_size: int) -> str:
    return "one sample per case" if ensemble_size == 1 else f"{ensemble_size} samples per case combined by the task"

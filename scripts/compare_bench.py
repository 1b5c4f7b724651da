"""Several ``lavin bench`` results side by side: the model's main metric per run, the best baseline, wins.

    python scripts/compare_bench.py old=runs/eval/old/bench.json new=runs/eval/new/bench.json
    python scripts/compare_bench.py old=A/bench.json new=B/bench.json --ceiling     # add each run's vae_ceiling

Prints a Markdown table (one row per task found in the first result, in its order) and the wins
of each run. The runs must share their seed, cases and pair count, so that the baselines are the
same: the script refuses results whose training-free baselines differ.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ARROWS = {True: "↑", False: "↓"}


def load(spec: str) -> tuple[str, dict]:
    """``LABEL=PATH`` (or a bare path, labelled by its folder) -> (label, bench.json contents)."""
    label, sep, path = spec.partition("=")
    if not sep:
        label, path = Path(spec).parent.name, spec
    file = Path(path)
    if file.is_dir():
        file = file / "bench.json"
    if not file.is_file():
        raise SystemExit(f"{spec}: no bench.json there; pass LABEL=PATH to the bench.json of a `lavin bench --out` folder")
    try:
        result = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f"{file}: not a bench.json ({err}); rerun `lavin bench --out` to write it again")
    if not isinstance(result, dict) or not isinstance(result.get("tasks"), dict) or "model" not in result:
        raise SystemExit(f"{file}: not a bench.json of `lavin bench` (no model and tasks)")
    return label, result


def fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def same_baselines(first: dict, other: dict, task: str, label: str) -> None:
    a, b = first["tasks"][task], other["tasks"][task]
    metric = a["main_metric"]
    for method in first.get("baselines", []):
        if method == "per_frame_model":  # the model itself, frame by frame: it differs by design
            continue
        x, y = a["scores"].get(method, {}).get(metric), b["scores"].get(method, {}).get(metric)
        if x is not None and y is not None and abs(x - y) > 1e-6:
            raise SystemExit(f"{label}: baseline {method} on {task} scores {y} against {x}: the runs do not share "
                             "their cases (same --seed, --count and --num-pairs needed)")


def compare(results: list[tuple[str, dict]], *, ceiling: bool) -> str:
    first = results[0][1]
    headers = ["task", "split", "metric", *[label for label, _ in results]]
    if ceiling:
        headers += [f"ceiling {label}" for label, _ in results]
    headers += ["best baseline", *[f"wins {label}" for label, _ in results]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    wins = {label: [0, 0] for label, _ in results}
    for task, row in first["tasks"].items():
        present = [(label, r) for label, r in results if task in r["tasks"]]
        if len(present) < len(results):
            continue
        for label, r in present[1:]:
            same_baselines(first, r, task, label)
        metric = row["main_metric"]
        best = row.get("best_baseline")
        best_value = row["scores"].get(best, {}).get(metric) if best else None
        split = row.get("split") or ("held-out" if row.get("held_out") else "trained")
        cells = [task, split, f"{metric} {ARROWS[bool(row['higher_is_better'][metric])]}"]
        cells += [fmt(r["tasks"][task]["scores"].get(r["model"], {}).get(metric)) for _, r in present]
        if ceiling:
            cells += [fmt(r["tasks"][task]["scores"].get("vae_ceiling", {}).get(metric)) for _, r in present]
        cells.append(f"{fmt(best_value)} ({best})" if best else "-")
        for label, r in present:
            won = bool(r["tasks"][task].get("wins"))
            wins[label][0] += won
            wins[label][1] += 1
            cells.append("**yes**" if won else "no")
        lines.append("| " + " | ".join(cells) + " |")
    summary = ", ".join(f"{label} wins {w} of {n}" for label, (w, n) in wins.items())
    return "\n".join(lines) + f"\n\n{summary}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", metavar="LABEL=BENCH_JSON", help="bench.json files (or their folders)")
    parser.add_argument("--ceiling", action="store_true", help="add each run's vae_ceiling column")
    args = parser.parse_args(argv)
    print(compare([load(spec) for spec in args.results], ceiling=args.ceiling))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model quality: test cases from the task generators, baselines, scoring, ``lavin bench`` and
``lavin demo``.

- ``cases``: draw cases, predict (several samples per case), combine, score, the baselines.
- ``bench``: every task scored against the baselines -> ``bench.json`` + a Markdown table.
- ``demo``: one case per task -> a grid image and ``metrics.json``.
- ``table``: the plain-text and Markdown tables the commands print.

Speed is measured elsewhere: the scripts in ``benchmarks/``.
"""

from lavin_core.evaluation.cases import (
    BASELINES,
    EVAL_SEED,
    Case,
    buildable_tasks,
    combine_samples,
    copy_query,
    draw_cases,
    mean_of_targets,
    mean_scores,
    nearest_target,
    predict,
    predict_samples,
    score,
)

__all__ = [
    "BASELINES",
    "EVAL_SEED",
    "Case",
    "buildable_tasks",
    "combine_samples",
    "copy_query",
    "draw_cases",
    "mean_of_targets",
    "mean_scores",
    "nearest_target",
    "predict",
    "predict_samples",
    "score",
]

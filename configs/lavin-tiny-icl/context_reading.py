"""The two-context test on a model, per task: one query, two contexts that differ only in the
hidden parameter; how often each answer is closer to its own context's truth.

    python configs/lavin-tiny-icl/context_reading.py MODEL [--trials 8] [--steps 10]
"""

from __future__ import annotations

import argparse

import registry
from lavin_core.evaluation.context_reading import context_reading
from lavin_core.pipeline import load_pipeline

#: (task, options): trained maps and drawn renderings, then held-out ones.
TASKS = (
    ("map_channel_invert", {}), ("map_hue_rotate", {}), ("map_flip", {}),
    ("semantic_segmentation", {"style": "drawn"}), ("depth", {"style": "drawn"}),
    ("map_duotone", {}), ("map_solarize", {}), ("unseen_semantic_segmentation", {}), ("unseen_depth", {}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    print(f"| task | closer | both closer | ({args.trials} trials, {args.pairs} pairs, {args.steps} steps) |")
    print("|---|---|---|---|")
    for name, options in TASKS:
        task = registry.get_task(name, size=64, **options)
        result = context_reading(pipe, task, trials=args.trials, num_pairs=args.pairs, num_steps=args.steps,
                                 progress=False)
        print(f"| {name} {options or ''} | {result.closer:.2f} | {result.both_closer:.2f} | |", flush=True)


if __name__ == "__main__":
    main()

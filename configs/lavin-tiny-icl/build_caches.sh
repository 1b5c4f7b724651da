#!/usr/bin/env bash
# lavin-tiny-icl: latent caches of the whole training universe (lavin_plugins.tasks.TRAINING_UNIVERSE:
# the 14 built-in tasks with renderings drawn per context, the trained image-map families, and the
# video tasks), encoded with the shipped lavin-tiny ST-VAE.
#   JOBS=2 bash configs/lavin-tiny-icl/build_caches.sh runs/lavin-tiny-icl-cache [COUNT] [GROUP]
# A task drawn per context is cached in instance groups of GROUP examples (default 6: a query and
# up to 5 pairs, matching data.max_pairs = 5 in dit.toml), so COUNT / GROUP instances per task.
# Clip tasks (5-frame clips) get COUNT / 2 examples: one costs about 9x an image example to make
# and encode. Seed 0 (SEED=N for other instances: the continuation run used SEED=1); evaluation
# uses seed 2026. A rerun resumes an interrupted build.
set -euo pipefail
out=${1:?usage: build_caches.sh OUT_DIR [COUNT] [GROUP]}
count=${2:-480}
group=${3:-6}
jobs=${JOBS:-1}
seed=${SEED:-0}
if [ "$jobs" -gt 1 ]; then export OMP_NUM_THREADS=1; fi
# one line per task: NAME COUNT [--option KEY=VALUE ...]; the clip tasks first (the longest)
python - "$count" <<'PY' > "${TMPDIR:-/tmp}/lavin-icl-tasks.txt"
import sys
import registry
from lavin_plugins.tasks import TRAINING_UNIVERSE

count = int(sys.argv[1])
rows = []
for name, options in TRAINING_UNIVERSE.items():
    task = registry.get_task(name, size=64, **options)
    if "source" in getattr(task, "__dict__", {}) and name.startswith("map_"):
        options = {**options, "source": "mixed"}  # scene renders and scikit-image's photos
    clip = task.example(0).pair.input.shape[1] > 1  # (C, T, H, W): more than one frame
    args = " ".join(f"--option {k}={v}" for k, v in options.items())
    rows.append((not clip, f"{name} {count // 2 if clip else count} {args}".strip()))
print("\n".join(row for _, row in sorted(rows, key=lambda r: r[0])))
PY
while read -r name n options; do
    echo "lavin cache build --task $name --count $n --size 64 --seed $seed --batch-size 24 --group-size $group $options --out $out/$name.zarr"
done < "${TMPDIR:-/tmp}/lavin-icl-tasks.txt" | xargs -P "$jobs" -I{} sh -c '{} > /dev/null && echo done: {}'

#!/usr/bin/env bash
# One short in-context training run on one GPU (issue 16), end to end, with a table at the end:
# latent caches of the training universe built on every core, the 8-block J-DiT
# (configs/lavin-tiny-icl/lavin-tiny-icl-deep) trained on them, exported with the shipped
# lavin-tiny-icl ST-VAE, and scored on both splits beside the J-DiT it started from behind the same
# ST-VAE (same cases, same seed, so the same baselines).
#
#   OUT=/some/dir scripts/gpu_icl_train.sh                 # on the GPU machine; never run there yet
#   DEVICE=cpu STEPS=2 BATCH=4 PER_TASK=12 COUNT=1 ENSEMBLE=1 scripts/gpu_icl_train.sh   # CPU smoke test, ~10 min
#
# Needs lavin installed (its built-in tasks are entry points: `pip install --no-deps
# --no-build-isolation -e .` where the dependencies are already there) and zarr for the caches (the
# GPU image lacks it: carry it as wheels, see /work/.library/device/README.md). Every stage prints
# its wall time, so a first run calibrates STEPS for the next. Settings (environment):
#   OUT      where the run, the model folder and the bench results go (default runs/gpu-icl)
#   DEVICE   cuda or cpu (default cuda); STEPS (3000), BATCH contexts per step (64), LR (2e-4)
#   PER_TASK examples cached per image task (480; clip tasks half), JOBS cache builders (all cores)
#   COUNT    bench cases per task (8), ENSEMBLE samples per case (6)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-icl}; DEVICE=${DEVICE:-cuda}; STEPS=${STEPS:-3000}; BATCH=${BATCH:-64}; LR=${LR:-2e-4}
PER_TASK=${PER_TASK:-480}; JOBS=${JOBS:-$(nproc)}; COUNT=${COUNT:-8}; ENSEMBLE=${ENSEMBLE:-6}
START=configs/lavin-tiny-icl/lavin-tiny-icl-deep
CACHE=runs/lavin-tiny-icl-cache    # where configs/lavin-tiny-icl/dit.toml reads its caches
export PYTHONUNBUFFERED=1

python3 - <<'PY'
import sys
try:
    import registry, zarr  # noqa: F401
    assert "depth" in registry.list_tasks()
except Exception as exc:  # one line saying what to install
    sys.exit(f"gpu_icl_train: lavin with its built-in tasks and zarr must be installed ({exc!r}); "
             "pip install --no-deps --no-build-isolation -e . and carry zarr as wheels")
PY
stage() { echo "== $1 ($(date -u +%H:%M:%S))"; SECONDS=0; }
took() { echo "   $1 took ${SECONDS}s"; }

mkdir -p "$OUT"
stage "1/4 caches: $PER_TASK examples per image task, $JOBS jobs"
SEED=3 JOBS=$JOBS bash configs/lavin-tiny-icl/build_caches.sh "$CACHE" "$PER_TASK" > "$OUT/caches.log" 2>&1 \
    || { tail -5 "$OUT/caches.log"; exit 1; }
took "caches"

stage "2/4 training: 8-block J-DiT from $START, $STEPS steps of $BATCH contexts on $DEVICE"
lavin train configs/lavin-tiny-icl/dit.toml --out "$OUT/run" \
    --set 'model.preset="lavin-tiny-deep"' --set "model.init=\"$START\"" --set "run.device=\"$DEVICE\"" \
    --set run.seed=9 --set "run.steps=$STEPS" --set "train.batch_size=$BATCH" --set "optimizer.lr=$LR" \
    --set schedule.warmup_steps=$(( STEPS < 1000 ? (STEPS + 9) / 10 : 100 )) --set "checkpoint.every=$STEPS" \
    --set run.log_every=$(( STEPS < 50 ? 1 : 50 )) 2>&1 | tr '\r' '\n' | grep -v "step/s" || true
[ -d "$OUT/run/export" ] || { echo "gpu_icl_train: training wrote no export (see above)"; exit 1; }
took "training"
lavin plot-loss "$OUT/run" -o "$OUT/loss.png" > /dev/null

stage "3/4 export and score (cases $COUNT, samples $ENSEMBLE, seed 2026)"
python3 scripts/export_shipped.py "$OUT/run/export" lavin_core/weights/lavin-tiny-icl/vae --out "$OUT/model" \
    --name gpu-icl --guidance-scale 2.5 --ensemble-size 6
# the starting J-DiT behind the same (shipped lavin-tiny-icl) ST-VAE, so only the J-DiT differs
rm -rf "$OUT/start" && mkdir -p "$OUT/start"
cp -r "$START/dit" "$START/model_index.json" "$OUT/start/" && cp -r lavin_core/weights/lavin-tiny-icl/vae "$OUT/start/vae"
trained="depth normals semantic_segmentation foreground_segmentation edges detection pose
         colorization denoising deblurring inpainting low_light deraining frame_prediction"
for model in "$OUT/start" "$OUT/model"; do
    name=$(basename "$model")
    lavin bench --model "$model" --device "$DEVICE" --split held-out --count "$COUNT" --ensemble "$ENSEMBLE" \
        --out "$OUT/bench/$name/held-out" --no-progress > /dev/null
    lavin bench --model "$model" --device "$DEVICE" --tasks $trained --count "$COUNT" --ensemble "$ENSEMBLE" \
        --out "$OUT/bench/$name/trained" --no-progress > /dev/null
done
took "scoring"

stage "4/4 the table"
for split in held-out trained; do
    echo "-- $split"
    python3 scripts/compare_bench.py "start=$OUT/bench/start/$split" "trained=$OUT/bench/model/$split"
done

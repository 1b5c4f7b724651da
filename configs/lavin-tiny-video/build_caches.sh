#!/usr/bin/env bash
# lavin-tiny-video (NOT YET RUN): latent caches of the four scene video tasks, encoded with the
# shipped lavin-tiny ST-VAE (its encoder is the one the lavin-tiny caches were built with, so the
# 14 caches of configs/lavin-tiny/build_caches.sh stay valid beside these).
#   JOBS=2 bash configs/lavin-tiny-video/build_caches.sh runs/lavin-tiny-cache [COUNT]
# Each example is a 5-frame 64x64 clip (2 latent frames per input and per target). Seed 0, as
# the image caches; evaluation uses seed 2026.
set -euo pipefail
out=${1:?usage: build_caches.sh OUT_DIR [COUNT]}
count=${2:-800}
jobs=${JOBS:-1}
tasks="video_depth video_normals video_segmentation depth_to_video"
if [ "$jobs" -gt 1 ]; then export OMP_NUM_THREADS=1; fi
printf '%s\n' $tasks | xargs -P "$jobs" -I{} \
    lavin cache build --task {} --count "$count" --size 64 --seed 0 --batch-size 16 \
        --out "$out/{}.zarr" --vae lavin-tiny

#!/usr/bin/env bash
# lavin-tiny, between the two stages: encode each built-in task's training examples once with
# the trained ST-VAE, so that J-DiT training reads latents instead of encoding pixels every step.
#   JOBS=2 bash configs/lavin-tiny/build_caches.sh runs/lavin-tiny-vae/export runs/lavin-tiny-cache [COUNT]
# Examples come from seed 0 (evaluation uses seed 2026). JOBS builds run side by side, one
# thread each. A rerun resumes an interrupted build.
set -euo pipefail
vae=${1:?usage: build_caches.sh VAE_EXPORT OUT_DIR [COUNT]}
out=${2:?usage: build_caches.sh VAE_EXPORT OUT_DIR [COUNT]}
count=${3:-800}
jobs=${JOBS:-1}
tasks="depth normals semantic_segmentation foreground_segmentation edges detection pose
       colorization denoising deblurring inpainting low_light deraining frame_prediction"
if [ "$jobs" -gt 1 ]; then export OMP_NUM_THREADS=1; fi
printf '%s\n' $tasks | xargs -P "$jobs" -I{} \
    lavin cache build --task {} --count "$count" --size 64 --seed 0 --batch-size 32 \
        --out "$out/{}.zarr" --vae "$vae"

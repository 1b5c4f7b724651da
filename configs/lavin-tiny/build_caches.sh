#!/usr/bin/env bash
# lavin-tiny, between the two stages: encode each built-in task's training examples once with
# the trained ST-VAE, so that J-DiT training reads latents instead of encoding pixels every step.
#   bash configs/lavin-tiny/build_caches.sh runs/lavin-tiny-vae/export runs/lavin-tiny-cache [COUNT]
# Examples come from seed 0 (evaluation uses seed 2026). A rerun resumes an interrupted build.
set -euo pipefail
vae=${1:?usage: build_caches.sh VAE_EXPORT OUT_DIR [COUNT]}
out=${2:?usage: build_caches.sh VAE_EXPORT OUT_DIR [COUNT]}
count=${3:-1000}
for task in depth normals semantic_segmentation foreground_segmentation edges detection pose \
            colorization denoising deblurring inpainting low_light deraining frame_prediction; do
    lavin cache build --task "$task" --count "$count" --size 64 --seed 0 --batch-size 32 \
        --out "$out/$task.zarr" --vae "$vae"
done

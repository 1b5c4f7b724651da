#!/usr/bin/env bash
# lavin-tiny-icl: every table of the README's in-context and video sections, for one model.
#   bash configs/lavin-tiny-icl/evaluate.sh MODEL OUT_DIR        # MODEL: lavin-tiny, lavin-tiny-icl or a folder
# Seed 2026 (training never uses it), the model's recommended settings, 16 cases per task.
set -euo pipefail
model=${1:?usage: evaluate.sh MODEL OUT_DIR}
out=${2:?usage: evaluate.sh MODEL OUT_DIR}
trained="depth normals semantic_segmentation foreground_segmentation edges detection pose
         colorization denoising deblurring inpainting low_light deraining frame_prediction"
video="video_depth video_normals video_segmentation depth_to_video frame_prediction"
lavin bench --model "$model" --split held-out --num-pairs 1 2 4 --out "$out/held-out" --no-progress
lavin bench --model "$model" --tasks $trained --out "$out/trained" --no-progress
lavin bench --model "$model" --tasks $video --out "$out/video" --no-progress

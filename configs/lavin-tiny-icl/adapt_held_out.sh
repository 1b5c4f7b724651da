#!/usr/bin/env bash
# The held-out split with test-time adaptation at the recommended settings (README, "Held out with
# test-time adaptation"): 16 cases, the model's ensemble and guidance, 1 and 4 pairs, seed 2026.
#   bash configs/lavin-tiny-icl/adapt_held_out.sh MODEL OUT_DIR        # about 35 minutes on 2 cores
# A tiny J-DiT's step keeps one core busy, so the twelve tasks run as two one-thread halves side by side.
set -euo pipefail
model=${1:?usage: adapt_held_out.sh MODEL OUT_DIR}
out=${2:?usage: adapt_held_out.sh MODEL OUT_DIR}
mkdir -p "$out"
lavin --threads 1 bench --model "$model" --tasks invert map_duotone map_emboss map_posterize map_solarize \
    map_threshold --num-pairs 1 4 --adapt-steps 80 --out "$out/A" --no-progress > "$out/A.log" 2>&1 &
first=$!
lavin --threads 1 bench --model "$model" --tasks silhouette unseen_depth unseen_detection unseen_edges \
    unseen_foreground_segmentation unseen_semantic_segmentation --num-pairs 1 4 --adapt-steps 80 \
    --out "$out/B" --no-progress > "$out/B.log" 2>&1 &
second=$!
status=0
wait "$first" || status=$?
wait "$second" || status=$?
cat "$out/A/bench.md" "$out/B/bench.md" 2>/dev/null || true
exit "$status"

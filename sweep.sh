#!/usr/bin/env bash
# The batch-size sweep: the four stages for each batch size, then results/summary.md and throughput.png.
#
#   ./sweep.sh DATASET_DIR MODEL_DIR [BATCH_SIZE ...]        (batch sizes default to 1 4 8 16 32 64)
#
# Settings from the environment (default): BACKEND (auto), LAYOUT (static: the Ascend guide's window; or whole,
# bucket), LONG_AUDIO (the layout's: skip for static), WORK (data/sweep), RESULTS (results), WARMUP_RUNS (10),
# TIMED_RUNS (100), DATASET_NAME (the dataset dir's name), TITLE (of the table and plot), OVERWRITE (empty; 1
# redoes stages whose outputs are up to date).
# Stages whose outputs are complete for the same inputs and settings are skipped, so a second run is quick.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,10p' "$0"
  exit 0
fi
if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
dataset=$1
model=$2
shift 2
batch_sizes=("$@")
[ ${#batch_sizes[@]} -gt 0 ] || batch_sizes=(1 4 8 16 32 64)
backend=${BACKEND:-auto}
work=${WORK:-data/sweep}
overwrite=()
[ -z "${OVERWRITE:-}" ] || overwrite=(--overwrite)
layout=(--layout "${LAYOUT:-static}")
[ -z "${LONG_AUDIO:-}" ] || layout+=(--long_audio "$LONG_AUDIO")

python3 "$here/wav2vec2_pth2ts.py" --pytorch_model_dir "$model" --output "$work/traced.pth" "${overwrite[@]}"
for bs in "${batch_sizes[@]}"; do
  echo "== batch size $bs"
  python3 "$here/wav2vec2_preprocess.py" --input "$dataset" --batch_size "$bs" --output "$work/input/bs$bs" \
    --data_path "$work/data" "${layout[@]}" --pytorch_model_dir "$model" "${overwrite[@]}"
  python3 "$here/compile.py" --batch_size "$bs" --input_path "$work/input/bs$bs" \
    --output_path "$work/output/$backend/bs$bs" --torchscript_path "$work/traced.pth" --backend "$backend" \
    --warmup_runs "${WARMUP_RUNS:-10}" --timed_runs "${TIMED_RUNS:-100}" "${overwrite[@]}"
  python3 "$here/wav2vec2_postprocess.py" --input "$work/output/$backend/bs$bs" --batch_size "$bs" \
    --data_path "$work/data" --pytorch_model_dir "$model" --report "$work/output/$backend/report_bs$bs.json"
done
python3 "$here/wav2vec2_summary.py" --output_root "$work/output" --results "${RESULTS:-results}" \
  --dataset "${DATASET_NAME:-$(basename "$dataset")}" --title "${TITLE:-wav2vec2-base-960h batch-size sweep}"

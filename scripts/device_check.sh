#!/usr/bin/env bash
# One run that checks and measures the accelerator paths, and writes one report.
#
#   bash scripts/device_check.sh [REPORT]          # default report: device_check_report.md
#
# On a GPU or TPU (under 8 minutes on one chip): scripts/check_msda.py for every implementation,
# scripts/bench_msda.py on OV2Seg's sizes, R50 and Swin-B inference on a window of ten 480x864
# frames (s/frame, compile, peak memory) and one training step at the LVIS recipe's size (R50,
# 1024x1024, two images). On CPU, or with DEVICE_CHECK_REDUCED=1, a reduced version runs the same
# steps at toy sizes (the native and reference MSDA cores in float32, the tiny config), so the script
# itself is tested on every machine.
#
# Each step runs under its own time limit; a failing step is reported and the others still run. The
# exit status is 0 when every step passed, 1 otherwise. When check_msda passes for a Pallas kernel
# on a device, the report ends with the line to add to VALIDATED_DEVICE_KINDS
# (kernels/ms_deform_attn/api.py), which is what lets implementation="auto" pick that kernel there.
# Environment: PYTHON (default: python), OV2SEG_FIXTURES (default: ../shared/fixtures).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
REPORT=${1:-device_check_report.md}
FIXTURES=${OV2SEG_FIXTURES:-../shared/fixtures}

mapfile -t DEVICE < <("$PYTHON" -c \
  'import jax; print(jax.default_backend()); print(jax.devices()[0].device_kind)')
BACKEND=${DEVICE[0]:-unknown}
KIND=${DEVICE[1]:-unknown}
REDUCED=${DEVICE_CHECK_REDUCED:-0}
[ "$BACKEND" = cpu ] && REDUCED=1

if [ "$REDUCED" = 1 ]; then
  IMPLS=$("$PYTHON" -c 'from kernels.ms_deform_attn.api import auto_implementation as a; print(a())')
  CHECK_ARGS=(--implementation "$IMPLS" --dtype float32)
  BENCH_MSDA_ARGS=(--batch 1 --repeats 1 --pass fwd --dtype float32 --implementation "$IMPLS"
    --shape inference_480x864_window10)
  INFERENCE_ARGS=(--models configs/tiny.py --frames 1 --height 64 --width 96 --repeats 1)
  TRAIN_ARGS=(--config configs/tiny.py --image-size 64 --batch 1 --steps 1)
  LIMITS=(1800 1800 1800 1800)  # generous: a shared CI machine may be slow
else
  CHECK_ARGS=()
  BENCH_MSDA_ARGS=(--repeats 5)
  INFERENCE_ARGS=(--models r50,swinb --frames 10 --height 480 --width 864 --repeats 3 --total-only)
  TRAIN_ARGS=(--config configs/ov2seg_r50_lvis.py --image-size 1024 --batch 2 --steps 2)
  # Per-step limits: 460 s in all, so a whole run stays under 8 minutes.
  LIMITS=(80 80 220 80)
fi

FAILED=0
CHECK_STATUS=1
{
  echo "# Device check: $KIND ($BACKEND)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "- $("$PYTHON" -c 'import jax; print(f"jax {jax.__version__}, {jax.device_count()} device(s)")')"
  echo "- reduced: $REDUCED; load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
} > "$REPORT"

step() {  # step TITLE LIMIT_S COMMAND...
  local title=$1 limit=$2 start status output
  shift 2
  start=$(date +%s)
  output=$(timeout "$limit" "$@" 2>&1)
  status=$?
  {
    echo
    echo "## $title"
    echo
    echo "\`$*\` -> exit $status in $(( $(date +%s) - start )) s"
    echo
    echo '```'
    echo "$output" | grep -v "^\*\*\*\|Very slow compile\|^$" | tail -n 60
    echo '```'
  } >> "$REPORT"
  [ "$status" -eq 0 ] || FAILED=1
  return "$status"
}

step "MSDA parity (check_msda.py)" "${LIMITS[0]}" "$PYTHON" scripts/check_msda.py "$FIXTURES/msda" \
  "${CHECK_ARGS[@]}" && CHECK_STATUS=0
step "MSDA speed (bench_msda.py)" "${LIMITS[1]}" "$PYTHON" scripts/bench_msda.py "${BENCH_MSDA_ARGS[@]}"
step "Inference (bench_inference.py)" "${LIMITS[2]}" "$PYTHON" scripts/bench_inference.py \
  "${INFERENCE_ARGS[@]}"
step "Training step (bench_train.py)" "${LIMITS[3]}" "$PYTHON" scripts/bench_train.py "${TRAIN_ARGS[@]}"

{
  echo
  echo "## Result"
  echo
  if [ "$FAILED" = 0 ]; then echo "every step passed"; else echo "SOME STEPS FAILED"; fi
  if [ "$REDUCED" = 0 ] && [ "$CHECK_STATUS" = 0 ]; then
    KERNEL=pallas_gpu
    [ "$BACKEND" = tpu ] && KERNEL=pallas_tpu
    echo
    echo "check_msda passed on this device kind; add to VALIDATED_DEVICE_KINDS:"
    echo "    \"$KIND\": \"$KERNEL\","
  fi
} >> "$REPORT"
echo "report: $REPORT"
exit "$FAILED"

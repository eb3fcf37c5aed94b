#!/usr/bin/env bash
# The one prepared measurement for a GPU machine without Node: what the adapter is, the WebGPU engine's bench for
# maxout 240 and 1600 beside tfjs's webgpu ops (host cost per step, J̃ examples/s, stacked seeds, FGSM per ε, PGD-40), the
# engine's and the webgpu backend's tests on that adapter, then one seed of configs/maxout-1600-adv.yaml at full
# length on the engine for what time is left (its epochs.csv comes back either way: a run that does not finish
# gives its pace). Each step has its own time limit, so a hang costs one step, not the machine's time.
#
# Prepare here (a Linux x86-64 machine with Node and the project's node_modules):
#   npm run build && ../shared/tools/pack-portable.sh          # .portable/: Node, fgsm, the Vulkan loader
#   mkdir -p .mnist && cp "$FGSM_DATA_DIR"/*.gz .mnist/         # the MNIST files (git-ignored, ~11.6 MB)
# then on the GPU machine, from the project's root (both folders carried beside the working tree):
#   source .portable/activate.sh && bash scripts/device-check.sh "$OUT"
# Without .portable (here, on lavapipe), `node` and the repo's dist/ are used: try the script before a GPU call.
# Output: one log per step under the folder given (default device-out/), and a summary on stdout.
set -uo pipefail
out=$(mkdir -p "${1:-device-out}" && cd "${1:-device-out}" && pwd)
root=$(pwd)
export FGSM_DATA_DIR=${FGSM_DATA_DIR:-$root/.mnist}
[ -f "$FGSM_DATA_DIR/t10k-labels-idx1-ubyte.gz" ] || [ -f "$FGSM_DATA_DIR/t10k-labels-idx1-ubyte" ] ||
  { echo "no MNIST files in $FGSM_DATA_DIR (see the header of $0)" >&2; exit 2; }
# the packed app when activate.sh put its fgsm on the PATH, else this checkout
fgsm_bin=$(command -v fgsm || true)
app=$root
[ -n "$fgsm_bin" ] && [ -d "$(dirname "$fgsm_bin")/../app/dist" ] && app=$(cd "$(dirname "$fgsm_bin")/../app" && pwd)
units_big=${DEVICE_CHECK_UNITS:-1600}
cap=${DEVICE_CHECK_CAP:-0} # seconds: caps every step's limit, to try the script's plumbing quickly on lavapipe

step() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  [ "$cap" -gt 0 ] && [ "$cap" -lt "$limit" ] && limit=$cap
  local started=$SECONDS
  (cd "$app" && timeout --kill-after=10 "$limit" "$@") >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - started)) s (limit $limit s)"
  grep -v 'Warning: .*artificially reduced' "$out/$name.log" | tail -n 40
}

echo "device-check: app $app, data $FGSM_DATA_DIR, node $(node --version), $(date -u +%FT%TZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# the limits add up to 510 s: a 10-minute device call with room for the machine's start and the files' return
run_limit=${DEVICE_CHECK_RUN:-160} # seconds for the full-length run
step doctor 20 node bin/fgsm.js doctor
step bench-engine-240 90 node dist/scripts/bench.js --backend webgpu --only engine --json
step bench-engine-$units_big 120 node dist/scripts/bench.js --backend webgpu --only engine --units "$units_big" --json
step bench-pgd 60 node dist/scripts/bench.js --backend webgpu --only pgd --json
step engine-tests 60 node --test --test-concurrency=1 dist/test/engine-train.test.js dist/test/engine-layers.test.js dist/test/engine-fgsm.test.js \
  dist/test/engine-objective.test.js dist/test/engine-rbf.test.js dist/test/engine-ensemble.test.js
# the run folder stays outside $out (a device call brings back only a few files): its record and epochs come back
runs=$(mktemp -d)
step maxout-1600-adv "$run_limit" node bin/fgsm.js run configs/maxout-1600-adv.yaml --backend webgpu --results-dir "$runs" \
  --set seed=1 --set seeds=null
for f in result.json epochs.csv status.json; do find "$runs" -name "$f" -not -path '*/checkpoints/*' -exec cp {} "$out/maxout-1600-adv-$f" \; ; done
echo "device-check: done at $(date -u +%FT%TZ), logs in $out"

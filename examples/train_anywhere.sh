#!/usr/bin/env bash
# Train CartPole-v1 with PPO outside Python from one rlexport training bundle (docs/bundle.md).
#
#   examples/train_anywhere.sh HOST STEPS SEED      HOST: node | browser | cpp
#
# Builds what HOST needs (npm packages; for browser Debian's chromium; for cpp examples/cpp's
# rlexport_train against the torch wheel's LibTorch, build dir examples/cpp/build kept), writes
# the bundle with `rlexport bundle --total-steps STEPS --seed SEED` (cpp: `--format aoti` too),
# trains in HOST, and prints as its last line
#   HOST: mean return R (last 20 episodes) after N steps, S steps/s
# Environment: PYTHON (default .venv/bin/python at the repository root), BUNDLE_DIR (default
# examples/runs/anywhere/<host>-<steps>-<seed>).
set -euo pipefail

EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$EXAMPLES")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
usage() { echo "usage: $0 node|browser|cpp STEPS SEED" >&2; exit 2; }
[ $# -eq 3 ] || usage
HOST="$1" STEPS="$2" SEED="$3"
[[ "$STEPS" =~ ^[1-9][0-9]*$ ]] || { echo "error: STEPS must be a positive integer, got '$STEPS'" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "error: SEED must be a non-negative integer, got '$SEED'" >&2; exit 2; }
case "$HOST" in
  node|browser|cpp) ;;
  *) usage ;;
esac
[ -x "$PY" ] || { echo "error: $PY not found: run 'make setup' first, or set PYTHON" >&2; exit 2; }
FORMAT=()
if [ "$HOST" = cpp ]; then
  # 1. the C++ host, built against the LibTorch inside the torch wheel (incremental)
  for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (needs cmake>=3.18 and a C++20 compiler)" >&2; exit 2; }
  done
  BUILD="$EXAMPLES/cpp/build"
  TORCH_DIR="$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')"
  echo "== build examples/cpp (rlexport_train)" >&2
  cmake -S "$EXAMPLES/cpp" -B "$BUILD" -DTorch_DIR="$TORCH_DIR/share/cmake/Torch" -Wno-dev >&2
  cmake --build "$BUILD" -j1 --target rlexport_train >&2
  FORMAT=(--format aoti)
else
  command -v node >/dev/null || { echo "error: node not found (needs node>=20 with npm)" >&2; exit 2; }
  # 1. the JS host's packages (onnxruntime-node / -web, puppeteer-core; .npmrc skips ORT's CUDA download)
  "$EXAMPLES/npm-ci-if-needed.sh" "$EXAMPLES/js" >&2
  if [ "$HOST" = browser ]; then
    "$EXAMPLES/web/ensure-chromium.sh" >&2
  fi
fi

# 2. the bundle
BUNDLE="${BUNDLE_DIR:-$EXAMPLES/runs/anywhere/$HOST-$STEPS-$SEED}"
rm -rf "$BUNDLE"
echo "== rlexport bundle --total-steps $STEPS --seed $SEED -o $BUNDLE" >&2
OMP_NUM_THREADS=1 "$PY" -m rlexport.cli.app bundle --env CartPole-v1 --algo ppo --total-steps "$STEPS" --seed "$SEED" "${FORMAT[@]}" -o "$BUNDLE" >&2

# 3. train (the last line is the result)
echo "== train in $HOST" >&2
case "$HOST" in
  node) exec node "$EXAMPLES/js/train.js" "$BUNDLE" --seed "$SEED" --every 50 --curve "$BUNDLE/curve.csv" ;;
  cpp) OMP_NUM_THREADS=1 exec "$BUILD/rlexport_train" "$BUNDLE" --seed "$SEED" --every 20 ;;
  browser) exec node "$EXAMPLES/web/run-browser.mjs" "$BUNDLE" --seed "$SEED" --screenshot "$BUNDLE/browser-training.png" ;;
esac

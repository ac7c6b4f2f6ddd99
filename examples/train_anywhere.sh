#!/usr/bin/env bash
# Train CartPole-v1 with PPO outside Python from one rlexport training bundle (docs/bundle.md).
#
#   examples/train_anywhere.sh HOST STEPS SEED      HOST: node | browser   (cpp: not yet)
#
# Builds what HOST needs (npm packages; for browser Debian's chromium), writes the bundle with
# `rlexport bundle --total-steps STEPS --seed SEED`, trains in HOST, and prints as its last line
#   HOST: mean return R (last 20 episodes) after N steps, S steps/s
# Environment: PYTHON (default .venv/bin/python at the repository root), BUNDLE_DIR (default
# examples/artifacts/anywhere/<host>-<steps>-<seed>).
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
  node|browser) ;;
  cpp) echo "error: the C++ host is not written yet (examples/cpp runs forward graphs only)" >&2; exit 2 ;;
  *) usage ;;
esac
command -v node >/dev/null || { echo "error: node not found (needs node>=20 with npm)" >&2; exit 2; }
[ -x "$PY" ] || { echo "error: $PY not found: run 'make setup' first, or set PYTHON" >&2; exit 2; }

# 1. the JS host's packages (onnxruntime-node / -web, puppeteer-core; .npmrc skips ORT's CUDA download)
"$EXAMPLES/npm-ci-if-needed.sh" "$EXAMPLES/js" >&2
if [ "$HOST" = browser ]; then
  "$EXAMPLES/web/ensure-chromium.sh" >&2
fi

# 2. the bundle
BUNDLE="${BUNDLE_DIR:-$EXAMPLES/artifacts/anywhere/$HOST-$STEPS-$SEED}"
rm -rf "$BUNDLE"
echo "== rlexport bundle --total-steps $STEPS --seed $SEED -o $BUNDLE" >&2
OMP_NUM_THREADS=1 "$PY" -m rlexport.cli.app bundle --env CartPole-v1 --algo ppo --total-steps "$STEPS" --seed "$SEED" -o "$BUNDLE" >&2

# 3. train (the last line is the result)
echo "== train in $HOST" >&2
case "$HOST" in
  node) exec node "$EXAMPLES/js/train.js" "$BUNDLE" --seed "$SEED" --every 50 --curve "$BUNDLE/curve.csv" ;;
  browser) exec node "$EXAMPLES/web/run-browser.mjs" "$BUNDLE" --seed "$SEED" --screenshot "$BUNDLE/browser-training.png" ;;
esac

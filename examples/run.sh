#!/usr/bin/env bash
# End to end, outside Python: export the example artifacts with rlexport, then run them in
# Node.js (onnxruntime-node) and in C++ (LibTorch from the torch wheel) against their golden
# samples; and the JS training host (examples/js): its CartPole against Gymnasium, its first
# updates against rlexport's ONNX engine, a short training run in Node and one in headless
# Chromium (examples/web). Exits non-zero on any mismatch or error.
#
#   examples/run.sh                 everything (1-3 minutes; the C++ build dir is kept)
#
# Environment: PYTHON (default .venv/bin/python at the repository root), RLEXPORT_ARTIFACTS
# (default examples/artifacts), SKIP_EXPORT=1 (reuse the artifacts of an earlier run — but an
# AOTInductor package only runs with the torch build and CPU that compiled it).
set -uo pipefail

EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$EXAMPLES")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
export RLEXPORT_ARTIFACTS="${RLEXPORT_ARTIFACTS:-$EXAMPLES/artifacts}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
BUILD="$EXAMPLES/cpp/build"

START=$SECONDS
failed=()
stage() { printf '\n== %s (t=%ds)\n' "$1" $((SECONDS - START)); }
# On an error, let the background build/npm jobs finish (no orphans; the build stays cached).
die() { echo "run.sh: $*" >&2; wait; exit 2; }

for tool in node npm cmake c++; do
  command -v "$tool" >/dev/null || die "$tool not found (needs node>=20 with npm, cmake>=3.18, a C++20 compiler)"
done
[ -x "$PY" ] || die "$PY not found: run 'make setup' first, or set PYTHON"
# the browser host's Chromium (apt when root, else one line saying what to install)
"$EXAMPLES/web/ensure-chromium.sh" || die "Chromium is missing (see above)"

# The C++ build and npm ci run in the background while Python exports (each mostly uses one core).
mkdir -p "$BUILD"
# torch.utils.cmake_prefix_path without importing torch (seconds on a busy machine).
TORCH_DIR="$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')" \
  || die "torch is not installed for $PY"
(
  cmake -S "$EXAMPLES/cpp" -B "$BUILD" -DTorch_DIR="$TORCH_DIR/share/cmake/Torch" -Wno-dev \
    && cmake --build "$BUILD" -j1
) >"$BUILD/build.log" 2>&1 &
CPP_BUILD=$!
"$EXAMPLES/npm-ci-if-needed.sh" "$EXAMPLES/node" >"$BUILD/npm.log" 2>&1 &
NPM=$!
"$EXAMPLES/npm-ci-if-needed.sh" "$EXAMPLES/js" >"$BUILD/npm-js.log" 2>&1 &
NPM_JS=$!
JS_PARITY="$RLEXPORT_ARTIFACTS/js-parity"

# 1. Artifacts: always rebuilt, so that the consumers check this run's exporters.
if [ "${SKIP_EXPORT:-0}" != 1 ]; then
  stage "export artifacts ($PY examples/make_artifacts.py; C++ build and npm ci in the background)"
  "$PY" "$EXAMPLES/make_artifacts.py" --out "$RLEXPORT_ARTIFACTS" 2> >(grep -v -e 'torchvision is not installed' -e '^$' >&2) \
    || die "exporting the artifacts failed"
fi
[ -f "$RLEXPORT_ARTIFACTS/manifest.json" ] || die "no $RLEXPORT_ARTIFACTS/manifest.json"
if [ "${SKIP_EXPORT:-0}" != 1 ]; then
  stage "JS host parity data and bundle ($PY examples/js/make_parity.py)"
  "$PY" "$EXAMPLES/js/make_parity.py" --out "$JS_PARITY" 2> >(grep -v -e 'torchvision is not installed' -e '^$' >&2) \
    || die "recording the JS parity data failed"
fi

# 2. Node.js: onnxruntime-node from the npm registry (.npmrc skips its CUDA download).
stage "npm ci (examples/node)"
wait $NPM || { cat "$BUILD/npm.log" >&2; die "npm ci failed"; }
cat "$BUILD/npm.log"
stage "node --test"
(cd "$EXAMPLES/node" && node --test --test-reporter=spec) || failed+=("node")

# 3. The JS training host: parity, then a short training run in Node and in headless Chromium.
stage "npm ci (examples/js)"
wait $NPM_JS || { cat "$BUILD/npm-js.log" >&2; die "npm ci (examples/js) failed"; }
cat "$BUILD/npm-js.log"
stage "node --test (examples/js: CartPole vs Gymnasium, host vs ONNX engine, 50k-step training)"
(cd "$EXAMPLES/js" && RLEXPORT_JS_PARITY="$JS_PARITY" node --test --test-reporter=spec test/*.test.js) || failed+=("js host")
stage "headless Chromium (examples/web: 50k-step training, screenshot $JS_PARITY/browser-training.png)"
RLEXPORT_JS_PARITY="$JS_PARITY" node --test --test-reporter=spec "$EXAMPLES/web/browser.test.mjs" || failed+=("browser host")

# 4. C++: built against the LibTorch inside the torch wheel (incremental; build dir kept).
stage "build examples/cpp (log: $BUILD/build.log)"
if wait $CPP_BUILD; then
  stage "run examples/cpp"
  golden() { node -p "require(process.argv[1]).artifacts['$1'].golden" "$RLEXPORT_ARTIFACTS/manifest.json"; }
  "$BUILD/rlexport_check" \
    "$RLEXPORT_ARTIFACTS/$(golden loss_aoti)" \
    "$RLEXPORT_ARTIFACTS/$(golden torchscript)" || failed+=("c++")
else
  cat "$BUILD/build.log" >&2
  failed+=("c++ build")
fi

printf '\n'
if [ ${#failed[@]} -gt 0 ]; then
  echo "examples/run.sh: FAILED: ${failed[*]} ($((SECONDS - START)) s)"
  exit 1
fi
echo "examples/run.sh: all artifacts match their golden samples in Node.js and C++; the JS host matches the ONNX engine and learns in Node and Chromium ($((SECONDS - START)) s)"

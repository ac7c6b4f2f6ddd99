#!/usr/bin/env bash
# Steps/s of every training host, same settings, one after the other in one run: rlexport
# train's two Python engines and the JS host in Node and in headless Chromium, CartPole-v1 PPO
# with rlexport train's defaults (4 envs x 128 steps, 4 x 4 minibatches), one thread each.
#
#   examples/benchmark_hosts.sh [STEPS] [SEED]     (default 51200 1)
#
# Prints a markdown table (host, steps, mean return of the last 20 episodes, steps/s of the
# training loop; start-up exports and page loading excluded).
set -euo pipefail
EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$EXAMPLES")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
STEPS="${1:-51200}" SEED="${2:-1}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rlexport-hosts.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

rows=()
# "done N steps, mean return (last 20 episodes) R, S steps/s -> RUN"
for engine in torch onnx; do
  line="$("$PY" -m rlexport.cli.app train --env CartPole-v1 --algo ppo --engine "$engine" --total-steps "$STEPS" --seed "$SEED" \
    --threads 1 --no-export --quiet --out "$WORK/run-$engine" 2>/dev/null | grep '^done')"
  rows+=("$(echo "$line" | sed -E "s/^done ([0-9]+) steps, mean return \(last 20 episodes\) ([-0-9.na/]+), ([0-9]+) steps\/s.*/| Python, rlexport train --engine $engine | \1 | \2 | \3 |/")")
done
"$PY" -m rlexport.cli.app bundle --env CartPole-v1 --algo ppo --total-steps "$STEPS" --seed "$SEED" -o "$WORK/bundle" >/dev/null
# "HOST: mean return R (last 20 episodes) after N steps, S steps/s"
rows+=("$(node "$EXAMPLES/js/train.js" "$WORK/bundle" --seed "$SEED" --every 0 | tail -1 | sed 's/^node:/JS host, Node (onnxruntime-node):/' | sed -E 's/^(JS host, Node \(onnxruntime-node\)): mean return ([-0-9.naN]+) \(last 20 episodes\) after ([0-9]+) steps, ([0-9]+) steps\/s/| \1 | \3 | \2 | \4 |/')")
rows+=("$(node "$EXAMPLES/web/run-browser.mjs" "$WORK/bundle" --seed "$SEED" 2>/dev/null | tail -1 | sed -E 's/^browser: mean return ([-0-9.naN]+) \(last 20 episodes\) after ([0-9]+) steps, ([0-9]+) steps\/s/| JS host, headless Chromium (onnxruntime-web, wasm) | \2 | \1 | \3 |/')")
echo "CartPole-v1 PPO, seed $SEED, 1 thread each, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| host | steps | mean return (last 20) | steps/s |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"

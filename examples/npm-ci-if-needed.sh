#!/usr/bin/env bash
# npm ci in the package folder DIR unless its node_modules is already up to date with its lock file.
#   examples/npm-ci-if-needed.sh DIR
set -euo pipefail
cd "$1"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "node_modules up to date ($1)"
fi

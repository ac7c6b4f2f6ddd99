#!/usr/bin/env bash
# Make sure a headless Chromium is there for the browser host: Debian's chromium via apt when
# root, otherwise one line saying what to install. (puppeteer-core comes from npm with
# examples/js's packages and downloads no browser.)
set -euo pipefail
if [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium (apt-get install -y chromium)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "error: the browser host needs Chromium: sudo apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)" >&2
exit 2

#!/usr/bin/env bash
# The browser test (tests/suite/e2e/browser.rs) needs headless Chromium: Debian's `chromium`,
# or the binary CHROMIUM names. Installed here when missing, so `make test` alone sets up a
# fresh machine (as root, or with sudo); otherwise it says what to run.
set -euo pipefail
if [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq chromium
else
  echo "need-chromium: no Chromium; run 'apt-get install -y chromium' as root, or set CHROMIUM=/path/to/chrome" >&2
  exit 1
fi

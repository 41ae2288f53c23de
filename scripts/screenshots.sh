#!/usr/bin/env bash
# The README's pictures (docs/img/): the dashboard and the second report of a `cvctl demo` run,
# taken by headless Chromium (Debian's `chromium`; CHROMIUM names another).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=${CHROMIUM:-chromium}
out=target/screenshots
mkdir -p "$out" docs/img
cargo build --quiet --bins
target/debug/cvctl demo --out "$out" > "$out/demo.log"
dashboard=$(awk '$1 == "dashboard:" {print $2}' "$out/demo.log")
report=$(awk '$1 == "report" && $3 == "2:" {print $4}' "$out/demo.log")
shot() { # file, png, height
  "$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size="1000,$3" \
    --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$dashboard" docs/img/dashboard.png 820
shot "$report" docs/img/report.png 1200
ls -l docs/img/dashboard.png docs/img/report.png

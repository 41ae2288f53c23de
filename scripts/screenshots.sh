#!/usr/bin/env bash
# The README's pictures (docs/img/): the dashboard and the second report of a `cvctl demo` run,
# taken by headless Chromium (Debian's `chromium`; CHROMIUM names another).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=${CHROMIUM:-chromium}
# The demo's own output beside them, for the docs that quote it.
log=target/demo.log
mkdir -p target docs/img
cargo build --quiet --bins
target/debug/cvctl demo > "$log"
dashboard=$(awk '$1 == "dashboard:" {print $2}' "$log")
report=$(awk '$1 == "report" && $3 == "2:" {print $4}' "$log")
shot() { # file, png, height
  "$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size="1000,$3" \
    --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$dashboard" docs/img/dashboard.png 820
shot "$report" docs/img/report.png 1200
ls -l docs/img/dashboard.png docs/img/report.png "$log"

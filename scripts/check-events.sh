#!/usr/bin/env bash
# Independent checks of the events (issue 16, docs/events.md): the e2e events tests run with
# their fakes capturing every accepted request, then parsers that are not ours check each
# capture (tests/events/verify.py: the CloudEvents SDK, jsonschema, standardwebhooks), and the
# official Event Grid SDK sends to the fake topic (tests/events/sdk_send.py, run by the e2e
# test the_fake_topic_accepts_what_the_official_python_sdk_sends). Run from the repo root.
# Creates or reuses .venv-events/ (PyPI only); exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."
venv=.venv-events
req=tests/events/requirements.txt

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  echo "$want" > "$stamp"
fi

capture=target/events-capture
rm -rf "$capture"
CV_EVENTS_CAPTURE_DIR="$PWD/$capture" CV_EVENTS_PYTHON="$PWD/$venv/bin/python" \
  cargo test --test suite e2e::events::
"$venv/bin/python" tests/events/verify.py "$capture"

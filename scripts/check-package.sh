#!/usr/bin/env bash
# `make package-check`: the tests of what is deployed and how, on the package `make package`
# built. tests/deploy (pytest, in .venv-deploy/) checks the zip, the folder, azure.yaml,
# .funcignore, docs/deploy.md and the postprovision wait; tests/suite/package.rs starts the packaged
# handler on Azurite. Run from the repository root after `make package`.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f build/package.zip ] || { echo "check-package: build/package.zip is missing: run make package" >&2; exit 1; }

venv=.venv-deploy
req=tests/deploy/requirements.txt
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.requirements"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(cksum <"$req")" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  cksum <"$req" >"$stamp"
fi

status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/deploy "$@" || status=$?
cargo test --test suite package:: -- --ignored || status=$?
ls -l build/package.zip build/package/handler
exit $status

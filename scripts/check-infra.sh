#!/usr/bin/env bash
# Offline validation of infra/ (no Azure, no Bicep CLI): tree-sitter-bicep syntax,
# checkov's Bicep checks, and structural rules (tests/infra). Run from the repo root.
# Creates or reuses .venv-infra/; exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."
venv=.venv-infra
req=tests/infra/requirements.txt
start=$(date +%s)

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Reinstall only when the pinned requirements changed.
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  echo "$want" > "$stamp"
fi

# checkov must not phone home or look for an API key.
export BC_SKIP_MAPPING=TRUE CKV_NO_UPDATE_CHECK=1 CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/infra "$@" || status=$?
echo "check-infra: $(( $(date +%s) - start ))s"
exit $status

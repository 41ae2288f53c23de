#!/bin/sh
# azd's postprovision hook (and step 4 of the az route in docs/deploy.md): waits, bounded, until
# the storage role assignments the deployment just created take effect, so that the deploy
# after it does not meet a 403 (Azure/azure-dev#8026: with local auth off, the first upload
# right after provisioning gets 403 until the roles propagate; a minute later it works).
#
# What is polled: the deploying identity's own data-plane access, granted by the same
# deployment: list the model store container (Storage Blob Data Contributor) and peek the
# notification queue (Storage Queue Data Contributor). The 403 of #8026 is met by the app's
# identity when the SCM site writes the package to its deployment container; no one but the app
# can ask as that identity, so the deploying identity's access, assigned in the same
# deployment, is the nearest thing observable from here. `cvctl integrate` and `verify` need it
# anyway.
#
# Inputs (azd passes its environment to hooks): AZURE_STORAGE_BLOB_ENDPOINT,
# MODEL_STORE_CONTAINER, AZURE_STORAGE_QUEUE_ENDPOINT, CV_NOTIFICATION_QUEUE, and
# AZURE_PRINCIPAL_ID (empty: the deployment granted the deploying identity nothing, so there is
# nothing to wait for). WAIT_FOR_ROLES_TIMEOUT (seconds, default 300) and
# WAIT_FOR_ROLES_INTERVAL (default 10). The token comes from `azd auth token` when run by azd
# (AZURE_ENV_NAME is set), else from `az account get-access-token`; it is never printed.
set -eu

timeout=${WAIT_FOR_ROLES_TIMEOUT:-300}
interval=${WAIT_FOR_ROLES_INTERVAL:-10}
# Storage REST version for the two calls (any version that has bearer tokens, 2017-11-09+).
version=2023-11-03

fail() {
  echo "wait-for-roles: $*" >&2
  exit 1
}

if [ -z "${AZURE_PRINCIPAL_ID:-}" ]; then
  echo "wait-for-roles: no deploying principal was granted roles (AZURE_PRINCIPAL_ID is empty); nothing to wait for"
  exit 0
fi
for v in AZURE_STORAGE_BLOB_ENDPOINT MODEL_STORE_CONTAINER AZURE_STORAGE_QUEUE_ENDPOINT CV_NOTIFICATION_QUEUE; do
  eval "[ -n \"\${$v:-}\" ]" || fail "$v is not set (an output of infra/main.bicep)"
done
command -v curl >/dev/null 2>&1 || fail "needs curl"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# The bearer token goes to curl in a header file (mode 0600), not on a command line.
scope=https://storage.azure.com/.default
if [ -n "${AZURE_ENV_NAME:-}" ] && command -v azd >/dev/null 2>&1; then
  token=$(azd auth token --scope "$scope") || fail "azd auth token failed: run azd auth login"
  who=azd
else
  command -v az >/dev/null 2>&1 || fail "needs the Azure CLI (az) or azd, logged in as the deploying identity"
  token=$(az account get-access-token --resource https://storage.azure.com/ --query accessToken -o tsv) ||
    fail "az account get-access-token failed: run az login"
  who=az
fi
[ -n "$token" ] || fail "$who returned no token"
(
  umask 077
  printf 'Authorization: Bearer %s\nx-ms-version: %s\n' "$token" "$version" >"$work/headers"
)
unset token

blob_url="${AZURE_STORAGE_BLOB_ENDPOINT%/}/$MODEL_STORE_CONTAINER?restype=container&comp=list&maxresults=1"
queue_url="${AZURE_STORAGE_QUEUE_ENDPOINT%/}/$CV_NOTIFICATION_QUEUE/messages?peekonly=true&numofmessages=1"

# One call: prints "<status> <storage error code>"; status 000 when nothing answered (a new
# account's DNS name can take a moment).
call() {
  code=$(curl -sS -o "$work/body" -w '%{http_code}' -H "@$work/headers" --max-time 30 "$1" 2>"$work/curl") || code=000
  error=$(sed -n 's:.*<Code>\([^<]*\)</Code>.*:\1:p' "$work/body" 2>/dev/null | head -n 1)
  [ "$code" != 000 ] || error=$(tr '\n' ' ' <"$work/curl")
  echo "$code ${error:-}"
}

start=$(date +%s)
echo "wait-for-roles: waiting up to ${timeout}s for the storage role assignments to take effect ($who identity)"
while :; do
  blob=$(call "$blob_url")
  queue=$(call "$queue_url")
  if [ "${blob%% *}" = 200 ] && [ "${queue%% *}" = 200 ]; then
    echo "wait-for-roles: role assignments in effect after $(($(date +%s) - start))s"
    exit 0
  fi
  if [ "${blob%% *}" = 401 ] || [ "${queue%% *}" = 401 ]; then
    fail "storage refused the token (blob: $blob; queue: $queue): log in again as the deploying identity"
  fi
  elapsed=$(($(date +%s) - start))
  if [ "$elapsed" -ge "$timeout" ]; then
    fail "role assignments not in effect after ${elapsed}s (blob $MODEL_STORE_CONTAINER: $blob; queue $CV_NOTIFICATION_QUEUE: $queue). They can take longer; wait a few minutes, then run this again (azd hooks run postprovision) before azd deploy."
  fi
  echo "wait-for-roles: not yet (blob: $blob; queue: $queue), ${elapsed}s; next try in ${interval}s"
  sleep "$interval"
done

#!/bin/sh
# `make package`, and azd's prepackage hook: builds the static musl `handler` and lays out what
# the Functions host runs, nothing else:
#   build/package/      handler (0755), host.json, <Function>/function.json per function, and a
#                       local.settings.json for Core Tools only (it never uploads that file)
#   build/package.zip   the same files but local.settings.json, with Unix modes as Core Tools
#                       writes them (scripts/zip_package.py); azure.yaml's `dist:` deploys it
# An allow-list: a file reaches the package only if it is named below. Everything is built in a
# staging folder and moved into place at the end, so a failed build never leaves a half-built
# package. The C part of ring is compiled by Zig (cargo-zigbuild + ziglang from PyPI, pinned in
# scripts/package-requirements.txt), so no musl-tools is needed. POSIX sh: azd runs hooks with sh.
set -eu
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
# The functions, each a folder with its function.json. tests/deploy checks this list against
# the function folders in the repository.
FUNCTIONS="Notifications TrainingCompleted ExportCompleted PublishEvents"
EXECUTABLE=handler
OUT=build/package
ZIP=build/package.zip
VENV=.venv-package
REQUIREMENTS=scripts/package-requirements.txt

die() {
  echo "make package: $*" >&2
  exit 1
}

command -v cargo >/dev/null 2>&1 || die "needs Rust: install it with rustup (https://rustup.rs)"
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2 ||
    die "needs Rust's $TARGET target: run rustup target add $TARGET"
elif [ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ]; then
  die "needs Rust's $TARGET standard library (rustup target add $TARGET)"
fi

# Zig from PyPI as the musl C compiler, in a venv of its own; reinstalled when the pins change.
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 ||
  die "needs Python 3 with venv, for cargo-zigbuild and ziglang from PyPI (Debian/Ubuntu: apt-get install python3-venv)"
if [ ! -d "$VENV" ]; then
  "$python" -m venv "$VENV" >&2 ||
    { rm -rf "$VENV"; die "cannot create a Python venv (Debian/Ubuntu: apt-get install python3-venv)"; }
fi
bin="$VENV/bin"
[ -d "$VENV/Scripts" ] && bin="$VENV/Scripts" # a venv made by a Windows Python
stamp="$VENV/.requirements"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(cksum <"$REQUIREMENTS")" ]; then
  "$bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQUIREMENTS" >&2 ||
    die "cannot install cargo-zigbuild and ziglang from PyPI ($REQUIREMENTS): check the network"
  cksum <"$REQUIREMENTS" >"$stamp"
fi

# host.json names the executable; the zip marks exactly that entry executable.
named=$("$bin/python" -c 'import json,sys; print(json.load(open("host.json"))["customHandler"]["description"]["defaultExecutablePath"])')
[ "$named" = "$EXECUTABLE" ] || die "host.json runs '$named', the package builds '$EXECUTABLE'"

# cargo-zigbuild finds Zig as `python3 -m ziglang` in the venv, first on PATH.
PATH="$PWD/$bin:$PATH" cargo zigbuild --release --locked --target "$TARGET" --bin "$EXECUTABLE" >&2 ||
  die "cargo zigbuild failed (see above)"

mkdir -p build
stage="build/.package.$$"
zip_tmp="build/.package.zip.$$"
trap 'rm -rf "$stage" "$zip_tmp"' EXIT
trap 'exit 1' INT TERM
mkdir "$stage"
files="$EXECUTABLE host.json"
cp "target/$TARGET/release/$EXECUTABLE" "$stage/$EXECUTABLE"
chmod 0755 "$stage/$EXECUTABLE"
cp host.json "$stage/host.json"
for f in $FUNCTIONS; do
  [ -f "$f/function.json" ] || die "$f/function.json is missing"
  mkdir "$stage/$f"
  cp "$f/function.json" "$stage/$f/function.json"
  files="$files $f/function.json"
done
# `func azure functionapp publish` run in this folder reads the worker runtime from here
# (Core Tools WorkerRuntimeLanguageHelper.cs) and leaves this file out of the upload
# (FileSystemHelpers.cs GetLocalFiles).
printf '{\n  "IsEncrypted": false,\n  "Values": {\n    "FUNCTIONS_WORKER_RUNTIME": "custom"\n  }\n}\n' \
  >"$stage/local.settings.json"

# shellcheck disable=SC2086 # $files is a list of plain relative paths
"$bin/python" scripts/zip_package.py "$stage" "$zip_tmp" "$EXECUTABLE" $files

rm -rf "$OUT.old"
[ ! -e "$OUT" ] || mv "$OUT" "$OUT.old"
mv "$stage" "$OUT"
mv -f "$zip_tmp" "$ZIP"
rm -rf "$OUT.old"

echo "make package: $OUT/ and $ZIP ($(wc -c <"$ZIP" | tr -d ' ') bytes; handler $(wc -c <"$OUT/$EXECUTABLE" | tr -d ' ') bytes)"

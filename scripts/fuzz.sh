#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) in turn, TOTAL seconds in all (split evenly), from the
# corpus kept in the repo (fuzz/corpus/<target>/, read only); new inputs go to a scratch
# corpus. A crash fails the run and leaves its input in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh TOTAL_SECONDS   (FUZZ_MERGE=1: merge new coverage into the repo corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-60}
targets=(envelope notification base64text model_uri redact)

# cargo-fuzz needs nightly's -Z flags. CI machines have a nightly toolchain; without one,
# stable with RUSTC_BOOTSTRAP=1 accepts the same flags.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cargo_fuzz=(cargo +nightly fuzz)
else
  echo "fuzz: no nightly toolchain, using stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  cargo_fuzz=(cargo fuzz)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Safe Rust: no sanitizer (more executions per second); debug assertions on, so an
# arithmetic overflow is a crash too.
build_flags=(--release --debug-assertions --sanitizer none)
"${cargo_fuzz[@]}" build "${build_flags[@]}"

per=$(( total / ${#targets[@]} ))
[ "$per" -ge 1 ] || per=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  if ! "${cargo_fuzz[@]}" run "${build_flags[@]}" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$per" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  summary+=("$(printf '%-13s %6ss %10s runs %8s exec/s  cov %s' "$t" "$per" "$runs" "$rate" "$cov")")
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    # libFuzzer's merge: of the scratch inputs, those with new coverage join the repo corpus.
    "${cargo_fuzz[@]}" run "${build_flags[@]}" "$t" "fuzz/corpus/$t" "$scratch/$t" -- -merge=1 \
      >"$log.merge" 2>&1 || { tail -n 20 "$log.merge"; echo "fuzz: merging $t failed" >&2; }
  fi
done
echo "fuzz: ${#targets[@]} targets, ${total}s in all (scripts/fuzz.sh $total)"
printf '%s\n' "${summary[@]}"

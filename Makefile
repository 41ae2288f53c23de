# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := bash
AZURITE := node_modules/.bin/azurite

.PHONY: demo test lint unit infra-check events-check package package-check azurite release bench clean reliability reliability-long audit fuzz fuzz-long fuzz-cmin

# Azurite (the storage emulator) and Prism (the Training API contract mock) from npm, pinned by
# package-lock.json, into ./node_modules.
$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## Azurite + the Custom Vision stand-in + dev host + handler: two trainings, their reports, exports,
## copies, `latest`, the gate, the events (to a loopback webhook receiver, signatures verified) and
## the dashboard (written to target/demo/); stops what it started.
demo: $(AZURITE)
	cargo build --quiet --bins
	target/debug/cvctl demo

## Everything CI runs.
test: $(AZURITE) lint audit unit infra-check events-check package-check fuzz

lint:
	python3 scripts/module-cycles.py
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

unit: $(AZURITE)
	bash scripts/need-chromium.sh
	cargo test

infra-check:
	bash scripts/check-infra.sh

## The events through parsers that are not ours, in a pinned venv (.venv-events, PyPI): every
## event the e2e tests' fakes accepted is parsed by the CloudEvents SDK, validated against
## schemas/events and, for the webhook, verified by standardwebhooks; and the fake topic
## accepts what the official azure-eventgrid SDK sends (docs/events.md).
events-check: $(AZURITE)
	bash scripts/check-events.sh

## What Azure runs: build/package/ (handler, host.json, <Function>/function.json) and
## build/package.zip, an allow-list (scripts/package.sh). No musl-tools needed.
package:
	sh scripts/package.sh

## `make package`, then its tests: the zip and folder, the static handler started on Azurite,
## azure.yaml, .funcignore, the deploy walkthrough and the postprovision wait (tests/deploy).
package-check: $(AZURITE) package
	bash scripts/check-package.sh

## The reliability suite alone (faults, restarts, kills, scale-out, load of 200; part of
## `make unit`), one test at a time, printing its FIGURES lines (docs/reliability.md); the
## whole output in target/reliability.log.
reliability: $(AZURITE)
	set -o pipefail; cargo test --test suite reliability:: -- --nocapture --test-threads=1 2>&1 \
	  | tee target/reliability.log | grep -E '^(FIGURES|test |test result|thread )'

## The same with the long load: 1,000 notifications.
reliability-long: $(AZURITE)
	RELIABILITY_LONG=1 $(MAKE) --no-print-directory reliability

## Dependency audit against the offline RustSec copy that sits beside the clone in CI
## (shared/advisory-db; its date is in its SNAPSHOT.md): a vulnerability fails, an
## unmaintained or unsound crate is a warning. Both lock files: the app's and the fuzz crate's.
ADVISORY_DB ?= ../shared/advisory-db
audit:
	@test -d "$(ADVISORY_DB)" || { echo "audit: no advisory database at $(ADVISORY_DB) (set ADVISORY_DB=...)"; exit 1; }
	command -v cargo-audit >/dev/null || cargo install cargo-audit --locked
	cargo audit --db "$(ADVISORY_DB)" --no-fetch
	cargo audit --db "$(ADVISORY_DB)" --no-fetch --file fuzz/Cargo.lock

## Fuzzing (fuzz/, cargo-fuzz): every target from the corpus kept in fuzz/corpus/, FUZZ_SECONDS
## in all (60 for CI; `make fuzz-long FUZZ_SECONDS=600` by hand, FUZZ_MERGE=1 keeps what
## new coverage it finds). `make fuzz-cmin` minimises the kept corpus (edges only, to keep it
## small).
# In make test the seed is fixed (FUZZ_SEED=1), so a CI run explores the same inputs each
# time; fuzz-long draws a new seed each run.
fuzz:
	FUZZ_SEED=$(or $(FUZZ_SEED),1) bash scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

fuzz-long:
	bash scripts/fuzz.sh $(or $(FUZZ_SECONDS),600)

fuzz-cmin:
	cd fuzz && for t in $$(cargo +nightly fuzz list); do \
	  cargo +nightly fuzz cmin --release --debug-assertions --sanitizer none $$t -- -use_counters=0; done

## Azurite on its default ports (10000-10002) for `func start` with local.settings.json.
azurite: $(AZURITE)
	mkdir -p .azurite
	$(AZURITE) --silent --disableTelemetry --skipApiVersionCheck --location .azurite

## The package's static Linux handler, also at ./handler (for `func start` in the root).
release: package
	cp build/package/handler ./handler

## Whole-process benchmark: the release binary and the Python reference peer (bench/peer/) on
## one Azurite, driven as the Functions host drives them; writes bench/RESULTS.md. Not part of
## `make test`. BENCH_EXPORTS (default 1000), BENCH_LARGE=0 skips the 1 GiB copy, BENCH_MUSL=0
## skips `make release` (then no musl size is reported), BENCH_EVENTS=1 runs the Rust handler with
## a webhook sink configured (events on; docs/events.md#figures).
BENCH_EXPORTS ?= 1000
BENCH_LARGE ?= 1
BENCH_MUSL ?= 1
BENCH_VENV := bench/.venv

$(BENCH_VENV)/.installed: bench/peer/requirements.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/peer/requirements.txt
	@touch $@

bench: $(AZURITE) $(BENCH_VENV)/.installed
	set -o pipefail; cargo bench --bench inprocess -- --output-format bencher | tee bench/.criterion.txt
	cargo build --release
	@musl="not built (BENCH_MUSL=0)"; \
	if [ "$(BENCH_MUSL)" = 1 ]; then \
	  if $(MAKE) --no-print-directory release; then musl=ok; else musl="not built: make release failed"; fi; \
	fi; \
	BENCH_MUSL_STATUS="$$musl" \
	BENCH_COMMAND="make bench BENCH_EXPORTS=$(BENCH_EXPORTS) BENCH_LARGE=$(BENCH_LARGE) BENCH_MUSL=$(BENCH_MUSL)" \
	$(BENCH_VENV)/bin/python bench/driver.py --exports $(BENCH_EXPORTS) --large $(BENCH_LARGE)

clean:
	cargo clean
	rm -rf node_modules .azurite .venv-infra .venv-package .venv-deploy build handler bench/.venv

# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := bash
AZURITE := node_modules/.bin/azurite
MUSL_TARGET := x86_64-unknown-linux-musl

.PHONY: demo test lint unit infra-check azurite release clean

# Azurite (the storage emulator) and Prism (the Training API contract mock) from npm, pinned by
# package-lock.json, into ./node_modules.
$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## Azurite + dev host + handler, the seed's notifications end to end; stops what it started.
demo: $(AZURITE)
	cargo run --quiet -- demo

## Everything CI runs.
test: $(AZURITE) lint unit infra-check

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

unit: $(AZURITE)
	cargo test

infra-check:
	bash scripts/check-infra.sh

## Azurite on its default ports (10000-10002) for `func start` with local.settings.json.
azurite: $(AZURITE)
	mkdir -p .azurite
	$(AZURITE) --silent --disableTelemetry --skipApiVersionCheck --location .azurite

## Static Linux binary at ./handler, what host.json runs in Azure.
release:
	rustup target add $(MUSL_TARGET)
	command -v x86_64-linux-musl-gcc >/dev/null || (apt-get update && apt-get install -y musl-tools)
	cargo build --release --target $(MUSL_TARGET)
	cp target/$(MUSL_TARGET)/release/handler ./handler

clean:
	cargo clean
	rm -rf node_modules .azurite .venv-infra handler

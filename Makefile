# aihub — the commands in the README. `make run` and `make test` are the two that matter.

CARGO ?= cargo
# Provider plugins shipped with aihub and installed by `make run`.
PLUGINS ?= echo openai anthropic gemini
DATA_DIR ?= ./data
PLUGIN_DIR ?= $(DATA_DIR)/plugins
DEBUG_DIR := target/debug

.PHONY: run build plugins test lint test-fixtures unit bench bench-quick clean

## Build host and plugins (release), install the plugins, start the gateway.
run: plugins
	./target/release/aihub serve

build:
	$(CARGO) build --release

## Copy the release plugin libraries into the plugin dir. Each is written under a hidden
## temporary name and renamed into place: overwriting a loaded library in place can crash
## the server that maps it.
plugins: build
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(PLUGINS); do \
		cp target/release/libaihub_$$p.so $(PLUGIN_DIR)/.libaihub_$$p.so.tmp && \
		mv -f $(PLUGIN_DIR)/.libaihub_$$p.so.tmp $(PLUGIN_DIR)/libaihub_$$p.so && \
		echo "installed $(PLUGIN_DIR)/libaihub_$$p.so"; \
	done

## Everything CI checks: formatting, lints, then every test.
test: lint test-fixtures
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Libraries the end-to-end tests load: every workspace plugin (debug) and a second build
## of the template plugin that reports version 2.0.0 (for the hot-replace test).
test-fixtures:
	$(CARGO) build --workspace
	HELLO_PLUGIN_VERSION=2.0.0 $(CARGO) build -p hello-plugin
	@mkdir -p $(DEBUG_DIR)/test-plugins
	cp $(DEBUG_DIR)/libhello_plugin.so $(DEBUG_DIR)/test-plugins/libhello_plugin_v2.so
	$(CARGO) build -p hello-plugin

## Benchmark (issue 6): aihub against a bare pass-through proxy (the floor) and the mock
## upstream itself, same load on each. Writes bench/results/latest.md and latest.json.
## `bench-quick` takes under a minute; `bench` a few minutes.
bench:
	$(CARGO) build --release --workspace && $(CARGO) run --release -p aihub-bench --bin bench

bench-quick:
	$(CARGO) build --release --workspace && $(CARGO) run --release -p aihub-bench --bin bench -- --quick

clean:
	$(CARGO) clean

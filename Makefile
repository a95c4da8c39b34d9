# aihub — the commands in the README. `make run` and `make test` are the two that matter.

CARGO ?= cargo
# Provider plugins shipped with aihub and installed by `make run`.
PLUGINS ?= echo openai anthropic gemini bedrock ideogram
DATA_DIR ?= ./data
PLUGIN_DIR ?= $(DATA_DIR)/plugins
DEBUG_DIR := target/debug

.PHONY: run build plugins test lint test-fixtures abi1-fixture unit bench bench-quick bench-peers clean fuzz ui ui-deps ui-check

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

## Everything CI checks: formatting, lints, then every test (the console's browser test
## among them, host/tests/e2e/console.rs, which needs ui/node_modules and Chromium).
test: lint test-fixtures ui-deps
	$(CARGO) test --workspace

## The web console (issue 16). `ui-dist/` is committed and embedded in the binary, so
## `make run` needs no Node; `make ui` rebuilds it from ui/ (deterministic output).
ui: ui-deps
	cd ui && npm run build

## The console's npm packages (Vite, TypeScript, Preact, uPlot; playwright-core and
## axe-core for the browser test), installed from the lock file when it changed.
ui-deps:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory ui/node_modules/.package-lock.json; \
	else \
		echo "!!! npm is missing: the console's browser test will be skipped"; \
	fi

ui/node_modules/.package-lock.json: ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	@touch $@

## Fails when the committed ui-dist/ is not what the sources build.
ui-check: ui
	@if [ -n "$$(git status --porcelain ui-dist)" ]; then \
		git status --porcelain ui-dist; \
		echo "ui-dist/ differs from a fresh build of ui/: run 'make ui' and commit ui-dist/"; \
		exit 1; \
	fi
	@echo "ui-dist/ matches ui/"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Libraries the end-to-end tests load: every workspace plugin (debug), a second build
## of the template plugin that reports version 2.0.0 (for the hot-replace test), and a
## plugin built against plugin ABI 1.
test-fixtures: abi1-fixture
	$(CARGO) build --workspace
	HELLO_PLUGIN_VERSION=2.0.0 $(CARGO) build -p hello-plugin
	@mkdir -p $(DEBUG_DIR)/test-plugins
	cp $(DEBUG_DIR)/libhello_plugin.so $(DEBUG_DIR)/test-plugins/libhello_plugin_v2.so
	$(CARGO) build -p hello-plugin

## testing/abi1-plugin built against the aihub-plugin-api of ABI1_REV (the last ABI 1
## commit, taken from git history), in a workspace and target dir of its own; the first
## build compiles its dependencies once (a couple of minutes on two cores).
ABI1_REV := 7f79f48b68fb526b3e36ce4e14b3f968fcb0ef46
ABI1_SRC := target/abi1-src
abi1-fixture:
	@if [ ! -f $(ABI1_SRC)/.rev-$(ABI1_REV) ]; then \
		rm -rf $(ABI1_SRC) && mkdir -p $(ABI1_SRC) && \
		git archive $(ABI1_REV) plugin-api Cargo.lock | tar -x -C $(ABI1_SRC) && \
		touch $(ABI1_SRC)/.rev-$(ABI1_REV); \
	fi
	@mkdir -p $(ABI1_SRC)/abi1-plugin/src
	cp testing/abi1-plugin/workspace.toml.in $(ABI1_SRC)/Cargo.toml
	cp testing/abi1-plugin/Cargo.toml.in $(ABI1_SRC)/abi1-plugin/Cargo.toml
	cp testing/abi1-plugin/src/lib.rs $(ABI1_SRC)/abi1-plugin/src/lib.rs
	$(CARGO) build --manifest-path $(ABI1_SRC)/Cargo.toml --target-dir target/abi1 -p aihub-test-abi1-plugin
	@mkdir -p $(DEBUG_DIR)/test-plugins
	cp target/abi1/debug/libaihub_test_abi1_plugin.so $(DEBUG_DIR)/test-plugins/libaihub_abi1_plugin.so

## Benchmark (issue 6): aihub against a bare pass-through proxy (the floor) and the mock
## upstream itself, same load on each. Writes bench/results/latest.md and latest.json.
## `bench-quick` takes under a minute; `bench` a few minutes.
bench:
	$(CARGO) build --release --workspace && $(CARGO) run --release -p aihub-bench --bin bench

bench-quick:
	$(CARGO) build --release --workspace && $(CARGO) run --release -p aihub-bench --bin bench -- --quick

## aihub against its peers (issue 12): the same mock upstream and load generator run
## against aihub, LiteLLM proxy and Portkey's open-source gateway (pinned versions,
## installed from PyPI and npm into target/peers/ on first use; a peer that cannot be
## installed or started is reported as skipped). Writes bench/results/peers.md. Not part
## of CI or `make test`; a few minutes (longer the first time, for the installs).
bench-peers:
	$(CARGO) build --release --workspace && $(CARGO) run --release -p aihub-bench --bin bench-peers

## Fuzzing (libFuzzer through libfuzzer-sys; crate in fuzz/): each target for FUZZ_SECONDS,
## from the committed seeds in fuzz/corpus/<target>/ (new finds are kept in
## target/fuzz/corpus/, crashes written to fuzz/artifacts/<target>/). Built by plain cargo
## with the coverage instrumentation cargo-fuzz would add (no sanitizer, so stable Rust is
## enough and there is no tool to install). FUZZ_PROFILE=release builds optimised for long
## runs; the default dev build is quick (the host's dependencies are heavy).
FUZZ_SECONDS ?= 60
FUZZ_PROFILE ?= dev
FUZZ_DIR := target/fuzz
FUZZ_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_BIN := $(FUZZ_DIR)/$(FUZZ_TRIPLE)/$(if $(filter dev,$(FUZZ_PROFILE)),debug,$(FUZZ_PROFILE))
FUZZ_RUSTFLAGS := --cfg fuzzing -Cpasses=sancov-module \
	-Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
	-Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares \
	-Cdebug-assertions -Coverflow-checks
FUZZ_PURE_TARGETS := sse_parser openai_stream anthropic_stream gemini_stream echo_stream \
	openai_request anthropic_request gemini_request echo_request \
	anthropic_format responses_format completions_format
## The host's own parsers: they pull in the host's whole dependency tree. `FUZZ_HOST=0`
## (the CI pass) leaves them out.
FUZZ_HOST ?= 1
ifeq ($(FUZZ_HOST),1)
FUZZ_TARGETS := $(FUZZ_PURE_TARGETS) request_head admin_query
FUZZ_FEATURES :=
else
FUZZ_TARGETS := $(FUZZ_PURE_TARGETS)
FUZZ_FEATURES := --no-default-features
endif
fuzz:
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --manifest-path fuzz/Cargo.toml \
		--profile $(FUZZ_PROFILE) --target $(FUZZ_TRIPLE) --target-dir $(FUZZ_DIR) \
		$(FUZZ_FEATURES) $(foreach t,$(FUZZ_TARGETS),--bin $(t))
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t fuzz/artifacts/$$t; \
		if $(FUZZ_BIN)/$$t -artifact_prefix=fuzz/artifacts/$$t/ \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			$(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t >$(FUZZ_DIR)/$$t.log 2>&1; then \
			echo "fuzz: $$t: $$(grep '^Done' $(FUZZ_DIR)/$$t.log | tail -1)"; \
		else \
			grep -m 3 -A 2 'panicked at' $(FUZZ_DIR)/$$t.log; \
			grep -B 2 -A 30 -m 1 '^SUMMARY' $(FUZZ_DIR)/$$t.log; \
			echo "fuzz: $$t FAILED (full log $(FUZZ_DIR)/$$t.log; reproducer in fuzz/artifacts/$$t/)"; \
			exit 1; \
		fi; \
	done
	@echo "fuzz: all $(words $(FUZZ_TARGETS)) targets ran $(FUZZ_SECONDS) s each without a failure"

clean:
	$(CARGO) clean

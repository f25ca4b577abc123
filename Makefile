# kubectl-checkpoint — the one entry point.
#   make demo    bring up the local stack and checkpoint a running container
#   make test    everything CI runs: setup, lint, unit + integration tests, hack/ checks, e2e, fuzz (60 s a target)
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help setup build lint fmt unit hack-test test e2e fuzz demo down bench clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install the runtime stack, protoc and the test images (root, idempotent)
	bash hack/setup.sh

build: setup ## build every binary (debug)
	$(CARGO) build --workspace --bins

fmt: ## format the workspace
	$(CARGO) fmt --all

# e2e's scenarios are `test = false` (see `unit`), which --all-targets leaves
# out: linted on their own, with the same features (nothing checked twice).
lint: ## rustfmt check + clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --test scenarios -- -D warnings

# One build for unit and e2e: e2e's `scenarios` test is `test = false`, so
# `cargo test --workspace` runs every other test (e2e's own lib tests too)
# without a cluster, and hack/e2e-local.sh builds its binaries and runs
# `--test scenarios` with the same workspace-wide feature set: nothing is
# compiled twice.
unit: setup ## unit and integration tests of every crate (e2e scenarios: `make e2e`)
	$(CARGO) test --workspace --no-fail-fast

hack-test: setup ## the hack/ scripts' own checks: shellcheck, ports, teardown scope, renders (seconds)
	shellcheck -x -S warning hack/*.sh hack/lib/*.sh
	bash hack/test-hack.sh

e2e: setup ## the end-to-end suite on a local stack of its own (up, scenarios, down; runs beside `make demo`'s)
	bash hack/e2e-local.sh

fuzz: setup ## every cargo-fuzz target for 60 s (hack/fuzz.sh 600 for the long run)
	bash hack/fuzz.sh 60

test: setup lint unit hack-test e2e fuzz ## what CI runs

demo: setup ## local stack + `kubectl checkpoint counter` + the archive
	bash hack/demo.sh

down: ## stop the demo's local stack (.local; not an e2e or bench stack)
	bash hack/local-down.sh

bench: setup ## performance measurements (release build); prints `ratio NAME VALUE` lines
	bash hack/bench.sh

clean: down
	$(CARGO) clean
	rm -rf .local

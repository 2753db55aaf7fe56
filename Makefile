# beamops: `make up` starts the platform, `make test` runs every test. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
GO ?= go
GOFMT ?= gofmt
GO_MODULES := services/inference/gateway clients/go

.DEFAULT_GOAL := help
.PHONY: test-corpus compose-env help install protos stubs triton gateway up down status demo lint test test-unit bench system-deps clean

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml hatch_build.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(INSTALLED)  ## Create .venv and install beamops with its dev tools (generates the stubs).

protos: $(INSTALLED)  ## Generate the Python gRPC stubs (and .pyi) from protos/ into gen/python/.
	$(BIN)/python scripts/generate_stubs.py

stubs: $(INSTALLED)  ## Generate the stubs of every language (Python, Go, Java, C++).
	@scripts/install_system_deps.sh
	$(BIN)/python scripts/generate_stubs.py --all

triton:  ## Install the bundled Triton Inference Server (CPU, Python backend) into .venv-triton.
	@services/inference/triton/install.sh

gateway: $(INSTALLED)  ## Build the inference service's compiled data plane (Go) into services/inference/gateway/bin/.
	@services/inference/gateway/build.sh

system-deps: $(INSTALLED)  ## Install what the tests need outside Python: XRootD (Debian), SeaweedFS S3 server (built with Go), perf_analyzer.
	@scripts/install_system_deps.sh
	@scripts/install_s3_server.sh
	@scripts/install_perf_analyzer.sh

up: protos triton gateway  ## Start the four services on localhost under a supervisor that restarts them (state in ./var); prints the admin token.
	$(BIN)/beamops-stack up

compose-env:  ## Before `docker compose up` (compose.yaml): write .env with random secrets (mode 600; kept if present).
	@scripts/compose_env.sh

down:  ## Stop everything `make up` started.
	@if [ -x $(BIN)/beamops-stack ]; then $(BIN)/beamops-stack down; fi

status:  ## Show the health of each service, its restarts and last exit.
	@$(BIN)/beamops-stack status

demo:  ## After `make up`: the README walkthrough end to end (dataset, split, train, deploy, predict).
	@scripts/demo.sh

# Generated Go code (gen/, made by `make gateway`) is vetted with its module but not gofmt-checked.
lint: gateway  ## Check the code: ruff (Python), gofmt and go vet (each Go module, after building the gateway).
	$(BIN)/ruff check .
	@unformatted="$$(find $(GO_MODULES) -name '*.go' -not -path '*/gen/*' -print0 | xargs -0 $(GOFMT) -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt: run gofmt -w on:"; echo "$$unformatted"; exit 1; fi
	@for module in $(GO_MODULES); do echo "go vet ./... in $$module"; (cd $$module && $(GO) vet ./...) || exit 1; done

test: lint protos triton gateway system-deps  ## Lint, install what the tests need and run the whole suite.
	$(BIN)/python -m pytest

test-corpus: protos  ## Only the ROOT corpus: every TTree and RNTuple through the data service (2 min; docs/root-corpus.md).
	$(BIN)/python -m pytest -m corpus tests/integration/test_root_corpus_conformance.py

test-unit: protos  ## Only the fast unit tests.
	$(BIN)/python -m pytest tests/unit -q

bench: protos triton gateway system-deps  ## Run every benchmark in benchmarks/ and write bench-results/report.{json,md}.
	$(BIN)/python benchmarks/run_all.py --out bench-results

clean: down  ## Remove generated code, state and the virtual environments.
	rm -rf gen var $(VENV) .venv-triton services/inference/gateway/bin services/inference/gateway/gen

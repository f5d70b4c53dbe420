# Two commands a new user needs: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export LLMOPS_HOME ?= $(CURDIR)/.llmops
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# setup.sh installs uv with pip --user: its folder must be on PATH for the scripts that call uv.
export PATH := $(HOME)/.local/bin:$(PATH)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
# The demo and the tests run in development mode: well-known keys (dev-key-acme, dev-admin-key).
# `make up` does not: it needs LLMOPS_ADMIN_KEY or keys in the key store (see docs/operations.md).
DEV := LLMOPS_DEV_MODE=true

.PHONY: help setup protos check-protos lint infra-up infra-down up down status demo test \
        test-unit test-integration test-e2e bench compose-check clean

help:
	@echo "make demo   - set up, start the stack, ingest samples/corpus, search and answer, fine-tune, evaluate, canary"
	@echo "make test   - set up, lint, start infrastructure, run the whole test suite"
	@echo "other: setup protos lint up down status bench infra-up infra-down clean"

setup:
	@bash infra/scripts/setup.sh

protos: setup
	$(RUN) bash infra/scripts/gen-protos.sh

check-protos: setup
	@bash infra/scripts/check-protos.sh

lint: setup check-protos
	$(RUN) ruff check .
	$(RUN) mypy libs/llmops-kit/src libs/llmops-cli/src libs/llmops-pii/src libs/llmops-datasets/src services/*/src
	cd protos && $(RUN) buf lint

infra-up: setup
	bash infra/scripts/kafka.sh start
	bash infra/scripts/weaviate.sh start

infra-down:
	-bash infra/scripts/weaviate.sh stop
	-bash infra/scripts/kafka.sh stop

up: setup
	$(RUN) llmops up

down:
	-$(RUN) llmops down

status:
	$(RUN) llmops status

demo: setup
	$(DEV) $(RUN) bash infra/scripts/demo.sh

test: setup lint infra-up
	$(DEV) $(RUN) pytest -p no:cacheprovider --durations=40 $(PYTEST_ARGS)

test-unit: setup
	$(DEV) $(RUN) pytest -m unit $(PYTEST_ARGS)

test-integration: setup infra-up
	$(DEV) $(RUN) pytest -m integration $(PYTEST_ARGS)

test-e2e: setup infra-up
	$(DEV) $(RUN) pytest -m e2e $(PYTEST_ARGS)

# llama-cpp-python is a dependency of llmops-generation (its llama.cpp engine, and the bench's anchor).
bench: setup infra-up
	$(DEV) $(RUN) python bench/generation_engines.py
	$(DEV) $(RUN) python bench/llamacpp_weights.py
	$(DEV) $(RUN) python bench/ingest_throughput.py
	$(DEV) $(RUN) python bench/ingest_latency.py
	$(DEV) $(RUN) python bench/answer_latency.py
	$(DEV) $(RUN) python bench/answer_quality.py
	$(DEV) $(RUN) python bench/safety_checks.py
	$(DEV) $(RUN) python bench/observability_throughput.py

# Grafana's dashboards are generated from the observability panel definitions (committed).
.PHONY: dashboards
dashboards: setup
	$(RUN) python -m llmops_observability.panels.grafana infra/grafana/dashboards

clean: down
	rm -rf .llmops

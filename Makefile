# Tresor: `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
GEN := gen/python
PROTOS := $(shell find proto -name '*.proto' | sort)

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))
export SSL_CERT_FILE ?= $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt))

.PHONY: help setup proto proto-check openapi run test lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	touch $@

setup: $(VENV)/.synced $(GEN)/.generated ## Virtual environment, dependencies and generated code

$(GEN)/.generated: $(PROTOS) | $(VENV)/.synced
	rm -rf $(GEN)/tresor
	mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -I proto --python_out=$(GEN) --grpc_python_out=$(GEN) \
	    --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=$(GEN) \
	    --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=$(GEN) \
	    $(PROTOS)
	find $(GEN)/tresor -type d -exec touch {}/__init__.py \;
	touch $@

proto: ## Generate the Python gRPC code from proto/
	rm -f $(GEN)/.generated
	$(MAKE) --no-print-directory $(GEN)/.generated

proto-check: proto ## Prove the committed generated code matches the protos
	git diff --exit-code --stat -- $(GEN) || { echo "generated code is stale: run make proto and commit"; exit 1; }

openapi: setup ## Write the CRM's OpenAPI document to docs/openapi/crm.json
	mkdir -p docs/openapi
	$(PY) -m tresor_crm openapi > docs/openapi/crm.json.tmp
	mv docs/openapi/crm.json.tmp docs/openapi/crm.json

run: setup ## Start the whole stack locally and print the address and a demo login
	$(PY) -m tresor_devstack

lint: setup ## ruff check, ruff format --check, mypy (strict)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services tests benchmarks

fmt: setup ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint ## Run every test (real PostgreSQL, Redis, gRPC)
	$(VENV)/bin/pytest

bench: setup ## Benchmarks; figures go to docs/benchmarks.md
	$(PY) -m benchmarks.auth_authorize --record docs/benchmarks.md
	$(PY) -m benchmarks.crm_search --record docs/benchmarks.md
	$(PY) -m benchmarks.backup_snapshot --record docs/benchmarks.md
	$(PY) -m benchmarks.backup_export --record docs/benchmarks.md

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) $(TOOLS) .data

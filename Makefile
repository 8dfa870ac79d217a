# The two commands a fresh machine needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
BIN := $(VENV)/bin
export CRM_ROOT := $(CURDIR)

# Development mode: services accept the development JWT secret written in this repository.
# Only these targets set it; a service started any other way needs a real CRM_JWT_SECRET.
run test test-unit token bench: export CRM_DEV_MODE := 1

.PHONY: help install provision browser run test test-unit test-stack lint fmt docs docs-check token bench redrive clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Install Python and every dependency (uv, one lock file)
$(VENV)/.installed: pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
	  python3 -m pip install --quiet uv || { echo "make: cannot install uv: install Python 3.11+ with pip"; exit 1; }
	$(UV) sync --frozen --all-packages
	@touch $@

provision: install ## Fetch Kafka (Maven Central) and build FerretDB (Go), cached under ~/.cache
	$(BIN)/crm-stack provision

run: provision ## Start Kafka, FerretDB and the five services (Ctrl-C stops all; so does one dying, named)
	@echo "CRM platform: console :8000  intake :8001  cases :8002  notifications :8003  surveys :8004  reporting :8005"
	@echo "Kafka $${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}  MongoDB protocol $${MONGODB_URL:-mongodb://127.0.0.1:27017/}  data in .data/"
	@echo "Docs at http://127.0.0.1:800N/docs, a token: make token ROLE=agent REGIONS=shenzhen"
	@$(BIN)/crm-stack stopped 2>/dev/null || true
	@$(BIN)/honcho -f Procfile start $$($(BIN)/crm-stack processes); rc=$$?; $(BIN)/crm-stack stopped; exit $$rc

# The console's browser tests drive Debian's chromium (Playwright's own browser download does
# not work on these machines) with a CJK font for the Chinese screens.
browser: ## Install chromium and a Chinese font for the console's browser tests (apt)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-zenhei) || \
	  echo "make: chromium could not be installed: the console's browser tests will be skipped"

test: provision browser ## Unit and integration tests against real Kafka and a MongoDB-protocol server
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: install ## Only the fast tests that need no servers
	$(BIN)/pytest -q -m "not stack"

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy libs/contracts/src libs/runtime/src libs/devstack/src services/*/src

fmt: install ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: install ## Regenerate docs/events/*.json and the platform's AsyncAPI document
	$(BIN)/python -m crm_contracts.export docs

ROLE ?= agent
REGIONS ?= shenzhen
token: install ## A development bearer token: make token ROLE=supervisor REGIONS=shenzhen,shanghai
	@$(BIN)/crm-token --role $(ROLE) --regions $(REGIONS)

bench: provision ## Benchmarks against the embedded stack; results in docs/benchmarks.md
	$(BIN)/python -m bench

fuzz: provision ## Fuzz every service: schemathesis on HTTP, hostile events on Kafka (~10 min; not in make test)
	CRM_FUZZ=1 $(BIN)/pytest tests/fuzz -q -p no:cacheprovider -W ignore::DeprecationWarning

redrive: install ## Put dead letters back: make redrive SERVICE=cases
	$(BIN)/crm-redrive --service $(SERVICE)

clean: ## Remove the local data (.data/); caches under ~/.cache stay
	rm -rf .data

# Two commands set up everything: `make run` and `make test`. Each installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
APT_PACKAGES := chromium bubblewrap runsc
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help run test lint pytest deps jsdeps jsbuild sysdeps services bench migrate clean

help:
	@echo "make run    install what is missing, then serve http://127.0.0.1:8080"
	@echo "make test   install what is missing, then ruff, mypy, import-linter and pytest"
	@echo "make bench  run the benchmarks in bench/ (prints ratios)"

$(UV):
	@echo "==> installing uv $(UV_VERSION) into .tools/"
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMPS)/deps: pyproject.toml uv.lock | $(UV)
	@echo "==> installing locked Python dependencies into $(VENV)/"
	scripts/sync-deps.sh $(UV) $(PYTHON)
	@mkdir -p $(STAMPS) && touch $@

deps: $(STAMPS)/deps

# Third-party JavaScript from npm, exactly as package-lock.json pins it (the browser tests' axe-core).
$(STAMPS)/jsdeps: package.json package-lock.json
	@echo "==> installing locked npm packages into node_modules/"
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

jsdeps: $(STAMPS)/jsdeps

# The flow canvas's JavaScript (ui/elements/): Vue Flow, its plugins and dagre in one ES module, their CSS
# inlined as text. `vue` stays external: the bundle runs on NiceGUI's own Vue through its import map.
# Built, never committed; the same inputs give the same bytes.
JS_BUNDLE := ui/elements/dist/vue_flow.js
JS_ENTRY := ui/elements/vue_flow_lib.js
ESBUILD_FLAGS := --bundle --format=esm --external:vue --minify --target=es2020 --loader:.css=text \
  --define:process.env.NODE_ENV='"production"' --log-level=warning

$(JS_BUNDLE): $(JS_ENTRY) ui/elements/flow_canvas.css package-lock.json $(STAMPS)/jsdeps
	@echo "==> bundling the flow canvas's JavaScript into $@"
	node_modules/.bin/esbuild $(JS_ENTRY) $(ESBUILD_FLAGS) --outfile=$@

# The pages' Tailwind utilities, compiled ahead of time from the classes ui/ spells out (ui/tailwind.css):
# NiceGUI's in-browser compiler is off (ui.theme.RUN_OPTIONS).
CSS_BUNDLE := ui/elements/dist/tailwind.css
CSS_SOURCES := ui/tailwind.css ui/elements/flow_canvas.js $(shell find ui -name '*.py' -not -path '*/__pycache__/*')

$(CSS_BUNDLE): $(CSS_SOURCES) package-lock.json $(STAMPS)/jsdeps
	@echo "==> compiling the pages' Tailwind CSS into $@"
	node_modules/.bin/tailwindcss --input ui/tailwind.css --output $@ --minify

jsbuild: $(JS_BUNDLE) $(CSS_BUNDLE)

# Debian packages the tests need (a browser for e2e tests, bubblewrap and gVisor for the sandbox).
$(STAMPS)/sysdeps: Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> apt-get install$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing || (apt-get update && apt-get install -y --no-install-recommends $$missing)); \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
	@mkdir -p $(STAMPS) && touch $@

sysdeps: $(STAMPS)/sysdeps

# PostgreSQL and Redis on loopback, started if they are down (tests use both).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || (echo "==> starting PostgreSQL" && \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2)
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || (echo "==> starting Redis" && \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no && sleep 1)

run: deps jsbuild
	@mkdir -p data
	$(BIN)/python main.py

migrate: deps
	$(BIN)/python main.py migrate

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two pytest-xdist workers (one per core on the CI machine). `--dist loadfile` keeps each module
# (its app process and browser, its scripted servers) on one worker. Modules are handed out in
# collection order: xdist's default puts the modules with the fewest tests last, and those are
# the slow ones (schemathesis, browser tests), which then ran alone at the end.
# PYTEST_ARGS="-n 0" runs in one process.
PYTEST_WORKERS ?= 2

pytest: deps jsbuild sysdeps services
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test: lint pytest

# The engine bench's peers (LangGraph, CrewAI) live in their own venv, apart from the app's lock.
BENCH_VENV := .bench-venv

$(STAMPS)/bench-venv: bench/requirements-peers.txt
	@echo "==> installing the engine bench's peers into $(BENCH_VENV)/"
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-peers.txt
	@mkdir -p $(STAMPS) && touch $@

# bench/_*.py are helpers the benches start themselves (in another venv), not benches.
bench: deps jsbuild services $(STAMPS)/bench-venv
	@for b in bench/[!_]*.py; do echo "==> $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tools $(STAMPS) node_modules ui/elements/dist .mypy_cache .ruff_cache .pytest_cache

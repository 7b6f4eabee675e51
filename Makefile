# tokengate — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv redis-server chromium run test lint check render bench clean

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install tokengate with its dev tools

redis-server:  ## make sure a redis-server binary exists (installs Debian's package as root)
	@command -v redis-server >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing redis-server (Debian package)…"; \
	  (apt-get install -y -qq redis-server >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)) && exit 0; \
	fi; \
	echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server," \
	     "macOS: brew install redis) or set REDIS_URL to a Redis you run." >&2; exit 1

chromium:  ## make sure Debian's chromium exists for the portal's browser tests (installs it as root)
	@test -x /usr/bin/chromium && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (Debian package, for the portal's browser tests)…"; \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) && exit 0; \
	fi; \
	echo "/usr/bin/chromium is missing: install Debian's chromium package (the portal tests drive it)." >&2; exit 1

run: $(STAMP) redis-server  ## run the whole stack (demo provider unless provider keys are set); Ctrl-C stops it
	$(BIN)/tokengate run

test: $(STAMP) redis-server chromium  ## run every test (real Envoy, translators, Redis, fake providers)
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/mypy

check: lint test  ## lint, then test

render: $(STAMP)  ## render envoy/envoy.yaml from examples/providers.yaml (the reference config)
	$(BIN)/tokengate render -c examples/providers.yaml --workers 2 -o envoy/envoy.yaml

bench: $(STAMP) redis-server  ## benchmark vs bare Envoy and LiteLLM (PROFILE=1: py-spy profile; SOAK=600: soak seconds)
	$(BIN)/python -m bench $(if $(PROFILE),--profile) $(if $(SOAK),--soak $(SOAK))

clean:  ## remove .venv and var/ (local data, logs, dev certificate)
	rm -rf $(VENV) var

# tokengate — `make help` lists the targets.
SHELL := /bin/bash
# The venv's interpreter: Debian's python3.11 where the machine has it (with its venv module) — built with
# profile-guided and link-time optimization and linked statically, as the image's python:3.11-slim is, and
# ~13% faster here than a shared-library build without either such as pyenv's (docs/performance.md, "The
# interpreter and the access log") — else python3. An existing .venv keeps its interpreter: `make clean venv`.
PYTHON ?= $(shell /usr/bin/python3.11 -c 'import venv, ensurepip' 2>/dev/null && echo /usr/bin/python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# tokengate's own protobuf definitions, compiled into core/_gen/ (gitignored, never edited)
PROTOS := $(shell find proto -name '*.proto')
GEN := core/_gen/__init__.py

.DEFAULT_GOAL := help
.PHONY: help venv lock redis-server chromium promtool wrk run test lint check render bench bench-scale dashboard-png clean
UV_VERSION := 0.13.9
SHADOWED := opentelemetry-proto googleapis-common-protos  # their files, not xds-protos' copies (tests/test_deps.py)
UV := $(BIN)/uv

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Exactly what requirements.lock names (hashes checked), then tokengate itself without deps.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(BIN)/python requirements.lock
	@# xds-protos ships older copies of opentelemetry/proto and google/api|rpc at the same paths; which
	@# copy lands depends on install order. The OTLP exporter needs the owners' own: laid down last.
	$(UV) pip install -q --python $(BIN)/python --no-deps $(foreach p,$(SHADOWED),--reinstall-package $(p)) \
	  -r requirements.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# proto/ compiled by grpcio-tools (a dev dependency), after an install and whenever a .proto changes.
$(GEN): $(PROTOS) proto/generate.py $(STAMP)
	$(BIN)/python proto/generate.py

venv: $(STAMP) $(GEN)  ## create .venv, install exactly the locked dependencies and tokengate, compile proto/

lock:  ## re-lock after a pyproject.toml change, keeping every other pin (UPGRADE=1: newest releases allowed), reinstall, re-pin the image
	@test -x $(UV) || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install -q uv==$(UV_VERSION); }
	$(UV) pip compile -q $(if $(UPGRADE),--upgrade) --generate-hashes --extra dev --python-version 3.11 \
	  --custom-compile-command 'make lock' -o requirements.lock pyproject.toml
	$(MAKE) venv
	$(BIN)/python deploy/image/lock.py > deploy/image/requirements.txt  # the image installs the same versions
	$(BIN)/python deploy/image/lock.py --build > deploy/image/build-requirements.txt  # and builds with them

# $(call apt_ensure,TEST,PACKAGE,WHY,HELP): nothing when TEST passes; else Debian's PACKAGE (as root), or HELP.
define apt_ensure
	@$(1) && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(2) (Debian package, $(3))…"; \
	  (apt-get install -y -qq $(2) >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq $(2) >/dev/null)) && exit 0; \
	fi; \
	echo "$(4)" >&2; exit 1
endef

redis-server:  ## make sure a redis-server binary exists (installs Debian's package as root)
	$(call apt_ensure,command -v redis-server >/dev/null,redis-server,the gateway's store,redis-server is missing: \
	  install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.)

chromium:  ## make sure Debian's chromium exists for the portal's browser tests (installs it as root)
	$(call apt_ensure,test -x /usr/bin/chromium,chromium,for the portal's browser tests,/usr/bin/chromium is \
	  missing: install Debian's chromium package (the portal tests drive it).)

promtool:  ## make sure promtool exists for the alert-rule tests (installs Debian's prometheus package as root)
	$(call apt_ensure,command -v promtool >/dev/null,prometheus,promtool for the alert-rule tests,promtool is \
	  missing: install Debian's prometheus package (tests/deploy check the alert rules with it).)

wrk:  ## make sure wrk (the bench's load generator) exists (installs Debian's package as root)
	$(call apt_ensure,command -v wrk >/dev/null,wrk,the bench's load generator,wrk is missing: install it \
	  (Debian/Ubuntu: sudo apt-get install wrk).)

run: $(GEN) redis-server  ## run the whole stack (demo provider unless provider keys are set); Ctrl-C stops it
	$(BIN)/tokengate run

test: $(GEN) redis-server chromium promtool  ## run every test (real Envoy, translators, Redis, fake providers)
	$(BIN)/pytest

lint: $(GEN)  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict deploy/k8s/components/monitoring/render.py deploy/k8s/components/monitoring/demo.py

check: lint test  ## lint, then test

render: $(GEN)  ## render envoy/envoy.yaml from examples/providers.yaml (the reference config)
	$(BIN)/tokengate render -c examples/providers.yaml --workers 2 -o envoy/envoy.yaml

bench: $(GEN) redis-server wrk  ## benchmark vs bare Envoy and LiteLLM (PROFILE=1: py-spy profile; SOAK=600: soak seconds)
	$(BIN)/python -m bench $(if $(PROFILE),--profile) $(if $(SOAK),--soak $(SOAK))

bench-scale: $(GEN) redis-server  ## admission, settlement and reaper cost at 100 vs 100,000 accounts (about 3 minutes)
	$(BIN)/python -m bench.scale

dashboard-png: $(GEN) redis-server promtool  ## draw the Grafana dashboard on a local stack under 3 minutes of load (needs prometheus)
	$(BIN)/python deploy/k8s/components/monitoring/demo.py -o docs/observability/dashboard.png

clean:  ## remove .venv, var/ (local data, logs, dev certificate) and the code generated from proto/
	rm -rf $(VENV) var core/_gen

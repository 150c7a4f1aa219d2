# The README's two commands are `make run` and `make test`; both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test lint bench native browser-deps lrs xapi-clients clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Rebuild the compiled kernels whenever a .pyx changed (fast no-op otherwise).
native: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

run: native
	$(VENV)/bin/edge run $(ARGS)

test: native browser-deps lrs xapi-clients
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: native lrs
	$(PY) bench/run_all.py

# Debian's Chromium for the page tests (Playwright's own browser download does not work here).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Ralph, a real xAPI LRS, in its own venv (.lrs/venv) for the district-sync tests; never a product dependency.
lrs:
	$(PYTHON) -m tests.sync.lrs

# Real xAPI clients (npm registry) for the browser tests of the LRS, in .xapi-clients/; never a product dependency.
XAPI_CLIENTS := tincanjs@0.50.0 @xapi/xapi@3.0.3 @xapi/cmi5@1.4.0 adl-xapiwrapper@0.2.3
xapi-clients: .xapi-clients/.installed
.xapi-clients/.installed: Makefile
	mkdir -p .xapi-clients
	cd .xapi-clients && npm install --no-audit --no-fund --no-save --loglevel=error $(XAPI_CLIENTS)
	touch $@

clean:
	rm -rf build $(VENV) native/edge_native/*.so native/edge_native/*.c

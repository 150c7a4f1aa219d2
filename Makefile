# The README's two commands are `make run` and `make test`; both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
ARGS   ?=

.PHONY: run test lint bench native kernels browser-deps bench-deps fleet-deps lrs xapi-clients cache-conformance clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# `make run` needs only the product's dependencies (and Cython to compile the kernels)...
$(RUN_STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e . 'cython>=3.0'
	touch $@

# ... `make test`, `make lint` and `make bench` add the test and dev tools to the same venv.
$(DEV_STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Rebuild the compiled kernels whenever a .pyx changed (fast no-op otherwise).
kernels:
	$(PY) setup.py -q build_ext --inplace

native: $(DEV_STAMP)
	$(MAKE) -s kernels

run: $(RUN_STAMP)
	$(MAKE) -s kernels
	$(VENV)/bin/edge run $(ARGS)

test: native browser-deps fleet-deps lrs xapi-clients cache-conformance
	$(PY) -m pytest -q $(ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Benchmarks measure against peers installed here (a missing peer fails the benchmark, never a stand-in).
bench: native bench-deps lrs
	$(PY) bench/run_all.py

bench-deps:
	command -v wrk >/dev/null && command -v nginx >/dev/null && command -v curl >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq nginx-light wrk curl >/dev/null)

# Debian's Chromium for the page tests (Playwright's own browser download does not work here).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Fleet tests: Debian's ansible + ansible-lint (playbook checks and a real local run), avahi (mDNS coexistence).
fleet-deps:
	command -v ansible-playbook >/dev/null && command -v ansible-lint >/dev/null && command -v avahi-browse >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq ansible ansible-lint avahi-daemon avahi-utils dbus >/dev/null)

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

# HTTP caching conformance (http-tests/cache-tests, beside the project in ../shared) of `edge cache serve` with its
# default configuration; prints the table against published caches and fails below the floors (measured for
# issue 15: 252/365 pass, 158/160 required, 0 reused when forbidden).
CACHE_CONFORMANCE ?= ../shared/tools/cache-conformance
CACHE_FLOORS ?= --min-required 154 --min-total 244 --max-reused 0
cache-conformance: native
	$(PY) .ci/cache_conformance.py --tool $(CACHE_CONFORMANCE) $(CACHE_FLOORS)

clean:
	rm -rf build $(VENV) native/edge_native/*.so native/edge_native/*.c

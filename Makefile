# The README's two commands are `make run` and `make test`; both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test lint bench native browser-deps lrs clean image image-deps image-test image-smoke image-lock image-repro image-boot

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

test: native browser-deps lrs image-deps
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: native
	$(PY) bench/run_all.py

# Debian's Chromium for the page tests (Playwright's own browser download does not work here).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Ralph, a real xAPI LRS, in its own venv (.lrs/venv) for the district-sync tests; never a product dependency.
lrs:
	$(PYTHON) tests/sync/lrs.py

# SD-card image (image_build/, README "SD-card image"): build, check, boot under qemu. Needs root (mmdebstrap,
# chroot under qemu-user); installs its Debian tools itself. image-deps: the few tools the fast image tests use.
image-deps:
	bash image_build/host-deps.sh --light

image: $(STAMP)
	PYTHON=$(abspath $(PY)) bash image_build/build.sh

image-test: image
	EDGE_IMAGE_TESTS=1 $(PY) -m pytest -q -m image tests/image_build $(ARGS)

image-smoke: image
	$(MAKE) image-boot

# boot what `make image` built last (no rebuild; CI runs it right after image-test)
image-boot: $(STAMP)
	$(PY) image_build/smoke.py image_build/out/classroom-edge-$$($(PY) -c 'import edge; print(edge.__version__)')-arm64.img \
		--edge $(abspath $(VENV))/bin/edge --report image_build/out/smoke-report.json --timeout 1500

image-repro: image
	PYTHON=$(abspath $(PY)) bash image_build/repro.sh

image-lock: $(STAMP)
	PYTHON=$(abspath $(PY)) bash image_build/lock-wheels.sh

clean:
	rm -rf build $(VENV) native/*.so native/*.c

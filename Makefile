# amir-bench front door: `make demo` and `make test` set up everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.amir-bench-installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup chromium test test-fast demo demo-quick clean

setup: $(STAMP)

# torch first, pinned to the CPU wheel; the constraint file keeps that pin while the
# project's dependencies resolve, so no CUDA build of torch is ever pulled.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch ' + v + ' is not the pinned 2.13.0')"
	touch $(STAMP)

# Headless Chromium for the report test (installed when missing; the test skips with a reason
# where it cannot be installed).
chromium:
	-bash scripts/ensure_chromium.sh

test: setup chromium
	AMIR_BENCH_DATA_DIR=$${AMIR_BENCH_DATA_DIR:-../shared/data} $(PY) -m pytest -q -ra

test-fast: setup
	AMIR_BENCH_DATA_DIR=$${AMIR_BENCH_DATA_DIR:-../shared/data} $(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/amir-bench demo --out demo

demo-quick: setup
	$(VENV)/bin/amir-bench demo --out demo-quick --quick

clean:
	rm -rf $(VENV) runs demo demo-quick

# The two commands of the README:   make demo   and   make test   (.ci/run runs make test)
# Both do all set-up first (idempotent, scripts/bootstrap.py): a virtual environment in .venv,
# torch 2.13.0 installed *before* anything that depends on torch (the CPU build on a machine
# without an NVIDIA GPU, the CUDA build with one), then pip install -e '.[test]'.
PYTHON ?= python3
VENV   ?= .venv
BOOT   := $(PYTHON) scripts/bootstrap.py --venv $(VENV)

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup prereqs demo test bench clean

setup:
	@$(BOOT) setup

# node >= 20, npm, cmake, a C++20 compiler (make test checks them before any test runs).
prereqs:
	@$(BOOT) prereqs

demo: setup
	$(VENV)/bin/rlexport train

# Prerequisites, set-up, the Python suite, then the non-Python consumers (Node.js + C++) on
# freshly exported artifacts; the durations of the phases at the end. PYTHON_ONLY=1 runs the
# Python suite alone (refused under CI=true).
test:
	@$(BOOT) test $(if $(filter 1,$(PYTHON_ONLY)),--python-only)

bench: setup
	$(VENV)/bin/python benchmarks/estimators.py

clean:
	rm -rf $(VENV) build *.egg-info runs examples/artifacts examples/runs examples/cpp/build examples/node/node_modules examples/js/node_modules

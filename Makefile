# The two commands of the README:   make demo   and   make test   (.ci/run runs make test)
# Both do all set-up first (idempotent): a local virtual environment with the CPU build of
# torch 2.13.0 installed *before* anything that depends on torch, so pip never pulls CUDA.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rlexport-installed

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'a CUDA build of torch was installed; expected the CPU build 2.13.0')"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/rlexport train

# The Python suite, then the non-Python consumers (Node.js + C++) on freshly exported artifacts.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile
	PYTHON=$(PY) bash examples/run.sh

bench: setup
	$(PY) benchmarks/estimators.py

clean:
	rm -rf $(VENV) build *.egg-info runs examples/artifacts examples/cpp/build examples/node/node_modules

# The two set-up commands from the README: `make demo` and `make test`.
# Each creates .venv and installs what it needs. TORCH picks the torch wheel:
# CI sets TORCH=torch==2.13.0 (a CPU build here). On Linux plain `torch` is the CUDA build (several GB);
# the CPU wheel (about 200 MB) is TORCH='torch --index-url https://download.pytorch.org/whl/cpu'.
# The venv remembers which TORCH it was built with: a later call without TORCH keeps it, and passing
# another one reinstalls torch (a bare first call installs plain `torch`).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= $(or $(shell cat $(VENV)/.torch 2>/dev/null),torch)
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test install install-test clean FORCE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Rewritten only when TORCH differs from the last install, so that .installed is rebuilt then.
$(VENV)/.torch: FORCE | $(BIN)/python
	@echo '$(TORCH)' | cmp -s - $@ || echo '$(TORCH)' > $@

$(VENV)/.installed: $(VENV)/.torch setup.cfg pyproject.toml
	@if [ -f $@ ]; then $(BIN)/pip uninstall -q -y torch; fi
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/ganlstm demo --overwrite

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

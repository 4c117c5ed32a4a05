# make demo / make test: each creates (once) and reuses the virtualenv $(VENV).
PYTHON ?= python3
VENV ?= .venv
TF_PACKAGE ?= tensorflow-cpu==2.21.0
EXTRAS ?= test
READY := $(VENV)/.ready
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test venv clean

venv: $(READY)

$(READY): setup.py Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TF_PACKAGE)" -e ".[$(EXTRAS)]"
	touch $(READY)

demo: $(READY)
	$(VENV)/bin/python examples/demo.py

test: $(READY)
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

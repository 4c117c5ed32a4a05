# make demo / make test: each creates (once) and reuses the virtualenv $(VENV).
# make test-oldest: the suite on the oldest TensorFlow the package claims (2.13, Keras 2).
# make test-notf: the offline tools and the checkpoint format, in a venv without TensorFlow.
PYTHON ?= python3
VENV ?= .venv
TF_PACKAGE ?= tensorflow-cpu==2.21.0
EXTRAS ?= test
# Extra pins for a leg: TF 2.13 pins typing-extensions<4.6, which IPython >= 8.13 cannot use.
EXTRA_PACKAGES ?=
READY := $(VENV)/.ready
# make bench BENCH_ARGS="--sizes 100,1000 --skip-vgg --repeat 1" for a quick look.
BENCH_ARGS ?=
# The tests that need no TensorFlow (tests/format's two TensorFlow comparisons aside).
NOTF_TESTS = tests/offline tests/format --ignore=tests/format/test_format_tf_compat.py \
	--ignore=tests/format/test_format_tf_fuzz.py
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-oldest test-notf lint docs bench venv clean

venv: $(READY)

$(READY): setup.py Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(TF_PACKAGE) -e ".[$(EXTRAS)]" $(EXTRA_PACKAGES)
	touch $(READY)

demo: $(READY)
	$(VENV)/bin/python examples/demo.py

test: $(READY)
	$(VENV)/bin/python -m pytest -q tests

# ruff (lint and format) and mypy on partialsaver/, configured in pyproject.toml.
lint: $(READY)
	$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS),lint]"
	$(VENV)/bin/ruff check partialsaver
	$(VENV)/bin/ruff format --check partialsaver
	$(VENV)/bin/mypy

# The documentation site, into site/; a broken link or reference fails the build.
docs: $(READY)
	$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS),docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d site

# The restore benchmark (plain Saver, tensorpack, init_from_checkpoint, SmartSaver), the
# initialized check alone, a restore's peak memory, then the rename and export benchmarks:
# 2-3 hours on 2 cores with the defaults (10,000-variable children take 2-3 minutes each).
bench: $(READY)
	$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS),bench]"
	$(VENV)/bin/python benchmarks/restore.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/restore_profile.py --sizes 1000
	$(VENV)/bin/python benchmarks/check.py --sizes 400,600,1000,10000
	$(VENV)/bin/python benchmarks/restore_memory.py
	$(VENV)/bin/python benchmarks/rename.py
	$(VENV)/bin/python benchmarks/export.py

test-oldest:
	$(MAKE) test VENV=.venv-tf213 TF_PACKAGE=tensorflow-cpu==2.13.1 EXTRA_PACKAGES='"ipython<8.13"'

# Every test run here must pass: a skip fails (PARTIALSAVER_NO_SKIPS).
test-notf:
	$(MAKE) venv VENV=.venv-notf TF_PACKAGE= EXTRAS=test-offline
	! .venv-notf/bin/python -c "import tensorflow" 2>/dev/null
	PARTIALSAVER_NO_SKIPS=1 .venv-notf/bin/python -m pytest -q $(NOTF_TESTS)

clean:
	rm -rf .venv .venv-tf213 .venv-notf build dist site *.egg-info .pytest_cache

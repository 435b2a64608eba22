# Computer Vision: Classification and Tools (CNN, SVM)
#   make book   build the whole book, every chapter executed (output: _build/html)
#   make test   run the whole test suite
# Both create the virtual environment (.venv) on first use and fetch the data packages
# where that is possible. See README.md.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
# nbgrader calls alembic from the environment's bin/, and jupyter-book starts kernels from it.
# MPLBACKEND is unset so that the kernels draw figures inline (a machine-wide Agg would hide them).
RUN    := env -u MPLBACKEND PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: help env data system-packages book-assets book test test-slow lab assignments gpu-check source-network benchmark-book benchmark-grading benchmark-grading-load clean clean-book

help:
	@echo "make book            build the book with every chapter executed -> _build/html/index.html"
	@echo "make test            run the test suite (builds the book from scratch in a temp folder)"
	@echo "make test-slow       the tests too long for every merge (the grader killed mid-run)"
	@echo "make lab             open the book and the homework in JupyterLab"
	@echo "make data            install the Debian packages (Fashion-MNIST, bubblewrap) as root, or say how to get them"
	@echo "make assignments     regenerate every student notebook (assignments/) from solutions/ with nbgrader"
	@echo "make gpu-check       backend, devices, and the course CNN's training speed on each (GPU/CPU ratio)"
	@echo "make source-network  retrain the transfer-learning source network into source_network/"
	@echo "make benchmark-book  time a cold and a cached book build, per chapter"
	@echo "make benchmark-grading       our grader against stock nbgrader, per assignment"
	@echo "make benchmark-grading-load  a class of LOAD=500 submissions: time, memory, disk"
	@echo "make clean           remove the build output and the environment"

env: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11 or newer is needed (found: $$($(PYTHON) --version 2>&1)). Run: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Debian packages: Fashion-MNIST (data), bubblewrap (the autograder's sandbox) and chromium (the
# browser that tests/test_browser.py drives through Playwright; Playwright's own browsers are
# never downloaded). Installed where root and apt are available; elsewhere the course library
# falls back to the Keras download (see cvcourse/data.py), the autograder refuses to grade
# without --unsafe, and the browser tests are skipped.
DEBIAN_PACKAGES := dataset-fashion-mnist bubblewrap chromium
data: system-packages
system-packages:
	@missing=""; \
	[ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then \
	  echo "Debian packages: $(DEBIAN_PACKAGES) present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Debian packages: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }; \
	else \
	  echo "Debian packages missing:$$missing (install as root: sudo apt-get install$$missing)."; \
	  echo "  Without dataset-fashion-mnist the course library downloads Fashion-MNIST with Keras on first use;"; \
	  echo "  without bubblewrap the autograder refuses to grade (python -m autograder grade ... --unsafe overrides)."; \
	fi

# npm packages (package.json, package-lock.json -> node_modules/, git-ignored): KaTeX, served from
# the built site itself so that math is typeset offline and from file://, and axe-core for the
# accessibility test. Only what a page loads (KaTeX's script, style sheet and woff2 fonts) is
# copied into _static/katex/ (git-ignored), which Jupyter Book publishes with the committed
# _static/book-math.js (the `mathjax_path` of _config.yml) that typesets each page with it.
NPM_STAMP := node_modules/.installed
KATEX     := _static/katex/katex.min.js
book-assets: $(NPM_STAMP) $(KATEX)
$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm (Node.js) is needed for the book's KaTeX and axe-core (Debian: apt-get install npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(KATEX): $(NPM_STAMP)
	rm -rf _static/katex && mkdir -p _static/katex/fonts
	cp node_modules/katex/dist/katex.min.js node_modules/katex/dist/katex.min.css node_modules/katex/LICENSE _static/katex/
	cp node_modules/katex/dist/fonts/*.woff2 _static/katex/fonts/

book: env data book-assets
	$(RUN) $(BIN)/jupyter-book build . --builder html --warningiserror --keep-going
	@echo "The book: file://$(CURDIR)/_build/html/index.html"

test: env data book-assets
	$(RUN) $(BIN)/python -m pytest

# The tests too long to gate every merge (pytest -m slow): the grader killed six times in a run.
test-slow: env data book-assets
	$(RUN) $(BIN)/python -m pytest -m slow

# Every assignment of autograder/assignments.toml (python -m autograder list shows them).
assignments: env
	$(RUN) $(BIN)/python -m autograder release

# Backend-agnostic: KERAS_BACKEND=jax make gpu-check measures the JAX backend instead.
gpu-check: env data
	$(RUN) $(BIN)/python -m cvcourse.gpu_check

# Retrains into source_network/; copy both files to cvcourse/weights/ to replace the shipped network.
source-network: env data
	$(RUN) $(BIN)/python -m cvcourse.train_source_network --out source_network

# Speed against stock nbgrader on the same submissions; GRADING_ARGS="--assignments a1_hinge_loss --count 20" narrows it.
benchmark-grading: env data
	$(RUN) $(BIN)/python benchmarks/grading.py $(GRADING_ARGS)

# A class of LOAD submissions of Homework 1 through one grader (2 workers): time per submission
# at the start and the end, peak memory, disk. About 30 min for 500 on 2 cores.
LOAD ?= 500
benchmark-grading-load: env data
	$(RUN) $(BIN)/python benchmarks/grading.py --load $(LOAD) --workers 2

lab: env data
	$(RUN) $(BIN)/jupyter lab

benchmark-book: env data
	$(RUN) $(BIN)/python benchmarks/book_build.py

clean-book:
	rm -rf _build

clean: clean-book
	rm -rf $(VENV) *.egg-info

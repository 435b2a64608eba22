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
RUN    := PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: help env data book test lab benchmark-book clean clean-book

help:
	@echo "make book            build the book with every chapter executed -> _build/html/index.html"
	@echo "make test            run the test suite (builds the book from scratch in a temp folder)"
	@echo "make lab             open the book and the homework in JupyterLab"
	@echo "make data            install the Debian data packages (as root) or say how to get the data"
	@echo "make benchmark-book  time a cold and a cached book build, per chapter"
	@echo "make clean           remove the build output and the environment"

env: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11 or newer is needed (found: $$($(PYTHON) --version 2>&1)). Run: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Fashion-MNIST comes from Debian where root and apt are available; elsewhere the course
# library falls back to the Keras download on first use (see cvcourse/data.py).
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found in $(FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; }; \
	else \
	  echo "Fashion-MNIST: Debian package not installed (needs root: sudo apt-get install dataset-fashion-mnist)."; \
	  echo "               The course library will download it with Keras on first use instead."; \
	fi

book: env data
	$(RUN) $(BIN)/jupyter-book build . --builder html --warningiserror --keep-going
	@echo "The book: file://$(CURDIR)/_build/html/index.html"

test: env data
	$(RUN) $(BIN)/python -m pytest

lab: env data
	$(RUN) $(BIN)/jupyter lab

benchmark-book: env data
	$(RUN) $(BIN)/python benchmarks/book_build.py

clean-book:
	rm -rf _build

clean: clean-book
	rm -rf $(VENV) *.egg-info

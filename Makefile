# Two commands set everything up: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# the test suite runs on both cores of CI's machine (pytest-xdist; one torch thread per worker): whole files
# per worker, in collection order (tests/conftest.py puts the longest files first)
TEST_WORKERS ?= 2

.PHONY: quickstart test lint bench clean fashion-mnist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,executorch,openvino]"
	touch $(DEV_STAMP)

quickstart: $(STAMP)
	$(BIN)/attentivenas quickstart --out runs/quickstart

FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# Fashion-MNIST (Debian's dataset-fashion-mnist) where this runs as root with apt-get; elsewhere the
# tests that read it skip and say how to install it.
fashion-mnist:
	@if [ -f $(FASHION_MNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
			|| echo "note: could not install dataset-fashion-mnist; its tests will skip"; \
	else echo "note: Fashion-MNIST tests skip (as root: apt-get install dataset-fashion-mnist)"; fi

test: $(DEV_STAMP) fashion-mnist
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flops.py

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info

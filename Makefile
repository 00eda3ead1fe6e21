# Two commands set everything up and check it: `make install` then `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: install test test-slow bench lint clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip "setuptools<81" wheel
	# torch first, pinned, so pip does not resolve a different (multi-GB) build
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install -e ".[dev]"

test:
	$(PY) -m pytest -q -n 2

test-slow:  # the long measurements (24-megapixel apply, 1024x768 exact tiling): minutes each
	$(PY) -m pytest -q -m slow

bench:
	$(VENV)/bin/spectralstyle bench --size 256x256 --crops 16 --steps 5 --rounds 3 --device cpu --json bench-cpu.json

lint:
	$(VENV)/bin/ruff check src tests scripts

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

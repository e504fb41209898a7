# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Mull needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mull serve

test: $(STAMP)
	$(BIN)/ruff check bot worker tests bench
	$(BIN)/mypy bot worker
	$(BIN)/python -m pytest -q -n 3

lint: $(STAMP)
	$(BIN)/ruff check bot worker tests bench
	$(BIN)/mypy bot worker

bench: $(STAMP)
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/critique.py
	$(BIN)/python bench/notifications.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

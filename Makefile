# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two stamps: `make run` needs Mull alone; tests, lint and benchmarks also need the dev tools (pytest, ruff,
# mypy, hadolint, playwright, pip-tools...), installed only by the targets that use them.
RUN_STAMP := $(VENV)/.run-stamp
DEV_STAMP := $(VENV)/.dev-stamp

.PHONY: run test install lint bench lock clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Mull needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/mull serve

test: $(DEV_STAMP)
	$(BIN)/ruff check bot worker tests bench
	$(BIN)/mypy bot worker
	$(BIN)/python -m pytest -q -n 3 --maxschedchunk 1

lint: $(DEV_STAMP)
	$(BIN)/ruff check bot worker tests bench
	$(BIN)/mypy bot worker

# A missed target (exit 1) does not stop the rest: every figure gets printed.
bench: $(DEV_STAMP)
	-$(BIN)/python bench/intake.py
	-$(BIN)/python bench/warm_start.py
	-$(BIN)/python bench/bot_overhead.py
	-$(BIN)/python bench/concurrent_runs.py
	-$(BIN)/python bench/critique.py
	-$(BIN)/python bench/notifications.py
	-$(BIN)/python bench/gateway.py
	-$(BIN)/python bench/sandbox.py
	-$(BIN)/python bench/warm_setup.py

# requirements.lock: every dependency the container image installs (deploy/Dockerfile), pinned with its hashes,
# plus setuptools to build Mull itself. Resolved on PyPI alone for Python 3.11 (the image's): this machine's pip
# configuration (mirrors, find-links) stays out of the lock. Run after changing pyproject's dependencies.
lock: $(DEV_STAMP)
	$(BIN)/python -c 'import sys; sys.exit("make lock needs Python 3.11, the image'"'"'s; found " + sys.version.split()[0]) if sys.version_info[:2] != (3, 11) else None'
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_CONSTRAINT= $(BIN)/pip-compile --quiet --generate-hashes \
		--no-strip-extras --allow-unsafe --build-deps-for wheel --index-url https://pypi.org/simple \
		--no-emit-index-url --no-emit-trusted-host --no-emit-find-links --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

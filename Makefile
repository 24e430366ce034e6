# One command set for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test browser lint format bench lock clean

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)  ## migrate and serve on http://127.0.0.1:8000 (SQLite, in-process runner, sandbox)
	$(BIN)/mediagate serve

test: $(STAMP) browser  ## the whole suite: on SQLite, then on PostgreSQL when it is reachable
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest --db=postgresql $(PYTEST_ARGS)

browser:  ## Debian's chromium for the browser tests (they are skipped without it, outside CI)
	@command -v chromium >/dev/null || { apt-get install -y -qq chromium chromium-driver \
	  || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }; } \
	  || echo "chromium could not be installed: the browser tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check mediagate tests bench clients/python
	$(BIN)/ruff format --check mediagate tests bench clients/python
	$(BIN)/mypy
	$(BIN)/mypy --strict clients/python/src

format: $(STAMP)
	$(BIN)/ruff format mediagate tests bench clients/python
	$(BIN)/ruff check --fix mediagate tests bench clients/python

bench: $(STAMP)  ## the benchmark suite (about 10 min): bench/results/ and docs/performance.md
	$(BIN)/python -m bench

lock:  ## re-resolve pinned dependencies (needs uv: pip install uv)
	uv pip compile pyproject.toml -o requirements/base.lock --python-version 3.11
	uv pip compile pyproject.toml --extra dev -o requirements/dev.lock --python-version 3.11

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache

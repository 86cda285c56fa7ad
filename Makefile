# `make run`: install and start the server on the embedded default (no configuration).
# `make test`: install, start PostgreSQL/Redis if needed, run the whole test suite.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install run test lint bench-http bench-catalog bench-quiz bench-live

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c "import lms_live.app, pytest, schemathesis"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/lms-live serve

test: install
	bash .ci/bootstrap
	$(PY) -m pytest -n 2 --dist loadgroup

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-http: install
	$(PY) bench/http.py

bench-catalog: install
	$(PY) bench/catalog.py

bench-quiz: install
	$(PY) bench/quiz.py

bench-live: install
	$(PY) bench/live_quiz.py

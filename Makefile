# LocalChat: `make serve` and `make test` set themselves up on a fresh machine.
# Second runs skip finished steps (stamps below) and start in seconds.

PORT ?= 8000
HOST ?= 127.0.0.1
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHROMIUM ?=
export CHROMIUM

.PHONY: serve test unit e2e lint bench build setup chromium clean help

help:
	@echo "make serve [PORT=8000]   build and serve the site on http://$(HOST):$(PORT)"
	@echo "make test                lint, unit tests (CPython) and browser tests (Chromium)"
	@echo "make bench               benchmarks: boot, chat, models, tabs, heavy messages"

# --- set-up -------------------------------------------------------------------------

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['dev']))" > $(VENV)/dev-requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/dev-requirements.txt
	@touch $@

setup: node_modules/.package-lock.json $(VENV)/.installed

build: setup
	$(PY) tools/build.py

chromium:
	@$(PYTHON) tools/find_chromium.py --install > /dev/null

# --- the two commands -------------------------------------------------------------------

serve: build
	$(PY) tools/devserver.py --host $(HOST) --port $(PORT)

lint: setup
	$(VENV)/bin/ruff check pysrc tests tools bench
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

e2e: build chromium
	$(PY) -m pytest tests/e2e -q --durations=12

# Unit tests first (seconds), then the browser tests, each in its own pytest run
# (Playwright's sync API leaves an event loop that asyncio.run() in unit tests refuses).
test: build chromium lint
	$(PY) -m pytest tests/unit -q
	$(PY) -m pytest tests/e2e -q --durations=12

bench: build chromium
	$(PY) bench/boot.py; boot=$$?; $(PY) bench/chat.py; chat=$$?; $(PY) bench/models.py; \
	models=$$?; $(PY) bench/tabs.py; tabs=$$?; $(PY) bench/tabs_downloads.py; \
	tabdl=$$?; $(PY) bench/heavy.py; heavy=$$?; $(PY) bench/memory.py; memory=$$?; \
	exit $$(( boot || chat || models || tabs || tabdl || heavy || memory ))

clean:
	rm -rf web/vendor .build test-results

# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
# Front-end libraries come from the npm registry (package.json, pinned by package-lock.json) and are served from
# the app's own static folder: nothing is fetched from a CDN at run time.
ECHARTS  := api/static/vendor/echarts.min.js

.PHONY: run test test-shifted fuzz lint typecheck pytest install install-dev screenshot eval-full eval-gate-real bench stack clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

$(ECHARTS): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p $(dir $@)
	cp node_modules/echarts/dist/echarts.min.js $@

install: $(STAMP) $(ECHARTS)
install-dev: $(DEVSTAMP) $(ECHARTS)

## make run: install, prepare the embedding model, ingest the demo libraries, serve the API.
run: $(STAMP) $(ECHARTS)
	$(VENV)/bin/copilot run

## make test: ruff, mypy, the import rules, `copilot prepare` (the real-model tests load the compliance models it
## trains instead of training their own), the whole pytest suite, API fuzzing, the gate with the real embedding
## model, then the suite again on shifted clocks.
## The first pytest run starts a throwaway PostgreSQL 15 and a Chroma server on loopback (devtools/services.py):
## every test that touches storage runs on SQLite with embedded Chroma and again on those servers.
test: $(DEVSTAMP) $(ECHARTS)
	$(VENV)/bin/ruff check copilot api eval cli tests bench devtools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/copilot prepare
	$(PY) -m devtools.services -- $(VENV)/bin/pytest
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory eval-gate-real
	$(MAKE) --no-print-directory test-shifted

## make fuzz: serve the app as deployed (demo library, WeCom configured against a local stub) and let
## schemathesis send generated requests to every operation: any 5xx or off-schema answer fails.
FUZZ_EXAMPLES ?= 25
fuzz: $(DEVSTAMP)
	$(PY) -m tests.fuzz_api --max-examples $(FUZZ_EXAMPLES)

## make test-shifted: the suite (without the slow model tests and the multi-process ones) with the process clock
## moved 40 and 400 days ahead by libfaketime, so a test that pins a date against the wall clock fails the day
## it is written.
SHIFTS ?= +40d +400d
test-shifted: $(DEVSTAMP)
	@command -v faketime >/dev/null || { echo "faketime is missing: apt-get install faketime"; exit 1; }
	@for shift in $(SHIFTS); do \
	  echo "== pytest with the clock moved $$shift"; \
	  faketime -f "$$shift" $(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow and not cluster" || exit 1; \
	done

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check copilot api eval cli tests bench devtools
	$(VENV)/bin/ruff format --check copilot api eval cli tests bench devtools

## make screenshot: regenerate docs/sidebar.png from the demo data (needs Debian's chromium).
screenshot: $(DEVSTAMP)
	$(PY) bench/sidebar_screenshot.py

## make eval-full: every suite on every data set with the real embedding model (slow; writes eval/out/full).
eval-full: $(STAMP)
	$(VENV)/bin/copilot eval full --out eval/out/full

## make eval-gate-real: the gate with the real embedding model (eval/thresholds_e5.yaml; the model is prepared
## offline once, vectors are kept in <data dir>/eval-cache).
eval-gate-real: $(STAMP)
	$(VENV)/bin/copilot prepare
	$(VENV)/bin/copilot eval gate --thresholds eval/thresholds_e5.yaml

## make stack: PostgreSQL, a Chroma server, 2 API processes and 2 workers on loopback ports it prints (Ctrl-C stops all).
stack: $(STAMP)
	$(PY) -m devtools.stack

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache node_modules api/static/vendor

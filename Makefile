# worldgen: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV ?= dev

.PHONY: chaos install demo test test-fast lint format asl schemas hasura-metadata infra-readme export-schema report-demo browser \
	lock synth layers rehearse bench bench-save bench-engine bench-serve bench-models bench-world clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/worldgen demo

test: $(STAMP) lint browser
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

# The demo world's report: export seconds per format, sizes, first paint, docs/report-screenshot.png.
report-demo: $(STAMP) browser
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

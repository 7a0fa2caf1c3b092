# worldgen: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV ?= dev

.PHONY: install demo test test-fast lint format asl schemas hasura-metadata synth layers bench bench-save bench-engine bench-world clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/worldgen demo

test: $(STAMP) lint
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

# The third-party layer, built for the Lambda runtime (Python 3.12 on arm64), not for this machine.
layers/dependencies/python: layers/dependencies/requirements.txt
	rm -rf $@
	$(PYTHON) -m pip install --quiet --platform manylinux2014_aarch64 --only-binary=:all: \
		--implementation cp --python-version 3.12 --target $@ -r $<

layers: layers/dependencies/python

synth: $(STAMP) layers/dependencies/python
	CDK_OUTDIR=cdk.out/$(ENV) $(BIN)/python infra/app.py -c env=$(ENV)

bench: bench-save bench-engine

bench-save: $(STAMP)
	$(BIN)/python -m benchmarks.bench_save

bench-engine: $(STAMP)
	$(BIN)/python -m benchmarks.bench_engine

# A real-size world at a real model's pace (the paced Claude simulator); prints, never asserts.
bench-world: $(STAMP)
	$(BIN)/python -m benchmarks.bench_world

clean:
	rm -rf $(VENV) .worldgen cdk.out .pytest_cache .mypy_cache .ruff_cache

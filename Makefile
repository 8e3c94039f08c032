# rmas developer targets. `make install` once, then `make test`, `make demo`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PROTO_SRC := $(wildcard proto/rmas/v1/*.proto)

.PHONY: install proto proto-check lint format test demo bench bench-store soak fuzz clean

$(BIN)/rmas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(BIN)/rmas

install: $(BIN)/rmas

# Generated code in rmas/v1 comes only from here; tests/test_proto_fresh.py fails when it is stale.
proto: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTO_SRC)

lint: install
	$(BIN)/ruff check rmas adapters tests benchmarks
	$(BIN)/ruff format --check rmas adapters tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix rmas adapters tests benchmarks
	$(BIN)/ruff format rmas adapters tests benchmarks

test: install
	$(BIN)/pytest -q

demo: install
	$(BIN)/rmas demo

bench: install
	$(PY) -m benchmarks.run

# National scale: 10,000,000 records into SQLite and PostgreSQL (about 10 minutes; see the module).
bench-store: install
	$(PY) -m benchmarks.store_bench

# A hub under steady load for 10 minutes: memory and latency must stay flat (see the module).
soak: install
	$(PY) -m benchmarks.soak

# The reference model against real hubs at scale, then mutated PAXLST and MRZ at a running hub
# (FUZZ_N documents/inputs each, default 100,000: about 30-60 min; resumable, see the module).
fuzz: install
	$(PY) -m benchmarks.fuzz

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

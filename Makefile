# Baton: `make demo` sets everything up and runs every pattern on the embedded
# Temporal dev server; `make test` sets up and runs the test suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup server worker demo down test bench lint clean histories

# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set: Temporal's sandbox
# re-imports workflow modules for every run, and compiling them each time was the
# largest CPU cost of a fan-out here (docs/benchmarks.md).
setup: $(STAMP)
	@$(BIN)/python -m compileall -q baton workflows activities >/dev/null

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

server: setup
	@scripts/dev_server.sh start

worker: setup
	$(BIN)/python worker.py

demo: server
	@scripts/demo.sh $(DEMO_ARGS)

down:
	@scripts/dev_server.sh stop

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/fanout_bench.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean: down
	rm -rf $(VENV) .temporal

histories: setup
	$(BIN)/python scripts/record_histories.py

# Baton: `make demo` sets everything up and runs every pattern on the embedded
# Temporal dev server; `make test` sets up and runs the test suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup server worker demo down test bench bench-quick lint clean histories

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

# One benchmark at a time (2 cores): each prints JSON lines with its baseline.
bench: setup
	$(BIN)/python bench/tool_bench.py
	$(BIN)/python bench/fanout_bench.py

bench-quick: setup
	$(BIN)/python bench/tool_bench.py --runs 6
	$(BIN)/python bench/fanout_bench.py --n 10 100 --repeat 1

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean: down
	rm -rf $(VENV) .temporal

histories: setup
	$(BIN)/python scripts/record_histories.py

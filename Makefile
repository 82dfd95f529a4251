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

# One benchmark at a time (2 cores): each prints JSON lines with its baseline from the
# same run; bench/report.py prints the table and draws docs/fanout.png.
# BENCH_ADDRESS=host:port runs them against any Temporal cluster instead.
BENCH_OUT := .bench/results.jsonl
export BENCH_ADDRESS

bench: setup
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/python -m pip install --quiet matplotlib
	@mkdir -p .bench && : > $(BENCH_OUT)
	$(BIN)/python bench/step_bench.py --runs 20 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/tool_bench.py --runs 20 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/throughput_bench.py --runs 500 --workers 1 2 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/fanout_bench.py --n 10 100 500 | tee -a $(BENCH_OUT)
	@test ! -f bench/session_bench.py || $(BIN)/python bench/session_bench.py | tee -a $(BENCH_OUT)
	$(BIN)/python bench/overhead_bench.py | tee -a $(BENCH_OUT)
	$(BIN)/python bench/waiting_bench.py --runs 10000 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/report.py $(BENCH_OUT)

# About a minute: the same figures, smaller.
bench-quick: setup
	@mkdir -p .bench && : > $(BENCH_OUT)
	$(BIN)/python bench/step_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/tool_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/throughput_bench.py --runs 100 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/fanout_bench.py --n 10 100 --repeat 1 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/waiting_bench.py --runs 300 --checkpoints 100 300 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/report.py $(BENCH_OUT) --chart .bench/fanout.png

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean: down
	rm -rf $(VENV) .temporal

histories: setup
	$(BIN)/python scripts/record_histories.py

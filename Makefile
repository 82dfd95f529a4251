# Baton: `make demo` sets everything up and runs every pattern on the embedded
# Temporal dev server; `make test` sets up and runs the test suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup server worker demo down test bench bench-quick lint clean histories traces \
	reliability reliability-quick browser docs

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

# Debian's Chromium, which the console's browser test (tests/test_console_browser.py)
# and `starter.py report --png` drive; browsers are never downloaded. Needs root (CI).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# TEMPORAL_ADDRESS and TEMPORAL_UI_PORT choose where it listens; what it started is
# recorded in .temporal/server.env, and every printed Web UI link follows it.
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

# The documentation site (mkdocs.yml), strict: a broken link or anchor fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet -d .site

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
	$(BIN)/python bench/mcp_bench.py --runs 20 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/flow_bench.py --runs 20 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/throughput_bench.py --runs 500 --workers 1 2 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/fanout_bench.py --n 10 100 500 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/fanout_bench.py --n 100 --branch-runs child | tee -a $(BENCH_OUT)
	@test ! -f bench/session_bench.py || $(BIN)/python bench/session_bench.py | tee -a $(BENCH_OUT)
	$(BIN)/python bench/overhead_bench.py | tee -a $(BENCH_OUT)
	$(BIN)/python bench/waiting_bench.py --runs 10000 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/sse_bench.py --subscribers 100 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/stream_bench.py --runs 20 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/pending_bench.py | tee -a $(BENCH_OUT)
	$(BIN)/python bench/report.py $(BENCH_OUT)

# About a minute: the same figures, smaller.
bench-quick: setup
	@mkdir -p .bench && : > $(BENCH_OUT)
	$(BIN)/python bench/step_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/tool_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/mcp_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/flow_bench.py --runs 4 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/throughput_bench.py --runs 100 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/fanout_bench.py --n 10 100 --repeat 1 | tee -a $(BENCH_OUT)
	$(BIN)/python bench/waiting_bench.py --runs 300 --checkpoints 100 300 --raw-runs 300 \
		| tee -a $(BENCH_OUT)
	$(BIN)/python bench/report.py $(BENCH_OUT) --chart .bench/fanout.png

# Prove it survives: the real dev server, workers and starters as processes; kill -9 of
# workers and of the server, provider storms, budgets and deadlines; every run checked
# against the call logs and its history. Rewrites docs/reliability.md. The quick subset
# writes no report. RELIABILITY_ARGS="--seed N" repeats a run's random choices.
reliability: setup
	$(BIN)/python scripts/reliability.py $(RELIABILITY_ARGS)

reliability-quick: setup
	$(BIN)/python scripts/reliability.py --quick $(RELIABILITY_ARGS)

# A trace viewer on this machine, no Docker: Arize Phoenix, its UI and its OTLP/HTTP
# receiver both on TRACES_PORT, its OTLP/gRPC receiver on TRACES_GRPC_PORT. It gets a
# virtualenv of its own because its dependencies would replace Baton's (anthropic 2.x
# -> 1.x). Ctrl-C stops it. It has no login, so all of it listens on TRACES_HOST,
# loopback unless you choose otherwise: Phoenix binds gRPC to every interface whatever
# PHOENIX_HOST says, so scripts/phoenix_local.py moves it (measured with `ss -ltn`).
PHOENIX := $(VENV)/phoenix
TRACES_HOST ?= 127.0.0.1
TRACES_PORT ?= 6006
TRACES_GRPC_PORT ?= 4317

traces:
	@test -x $(PHOENIX)/bin/phoenix || { $(PYTHON) -m venv $(PHOENIX) \
		&& $(PHOENIX)/bin/python -m pip install --quiet --upgrade pip \
		&& $(PHOENIX)/bin/python -m pip install --quiet arize-phoenix; }
	@echo "Trace viewer: http://$(TRACES_HOST):$(TRACES_PORT)"
	@echo "Run the worker and the starter with:"
	@echo "  export OTEL_EXPORTER_OTLP_ENDPOINT=http://$(TRACES_HOST):$(TRACES_PORT)"
	PHOENIX_HOST=$(TRACES_HOST) PHOENIX_PORT=$(TRACES_PORT) \
		PHOENIX_GRPC_PORT=$(TRACES_GRPC_PORT) PHOENIX_WORKING_DIR=$(PHOENIX)/data \
		PHOENIX_TELEMETRY_ENABLED=false $(PHOENIX)/bin/python scripts/phoenix_local.py serve

lint: setup
	$(BIN)/ruff check --no-cache .
	scripts/typecheck.sh
	$(BIN)/python scripts/layers.py

clean: down
	rm -rf $(VENV) .temporal

histories: setup
	$(BIN)/python scripts/record_histories.py

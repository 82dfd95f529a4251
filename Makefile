# Baton: `make demo` sets everything up and runs every pattern on the embedded
# Temporal dev server; `make test` sets up and runs the test suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup server worker demo down test bench bench-quick lint clean histories traces \
	reliability reliability-quick browser docs bench-setup bench-step bench-throughput \
	bench-fanout bench-waiting bench-tools bench-flow bench-streams bench-session \
	bench-overhead bench-pending bench-history

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

# One benchmark at a time (2 cores). Each part prints JSON lines with its baseline from
# the same run, appended to BENCH_OUT with the part's wall time (bench/run.py), and runs
# alone too: `make bench-step`, `make bench-waiting WAITING_ARGS="--runs 10000"`, ...
# `make bench` (about 10 minutes here, docs/running-benchmarks.md) empties
# BENCH_OUT, runs every part, then bench/report.py prints the goals and every figure
# and draws the step, throughput and fan-out charts into docs/ from that one file.
# BENCH_ADDRESS=host:port runs them against any Temporal cluster instead.
BENCH_OUT := .bench/results.jsonl
BENCH_RUN = $(BIN)/python bench/run.py $(BENCH_OUT)
BENCH_PARTS := bench-step bench-throughput bench-fanout bench-waiting bench-history \
	bench-tools bench-flow bench-streams bench-session bench-overhead bench-pending
export BENCH_ADDRESS

# Each part's size (the goals' scales; secondary figures kept small).
STEP_ARGS ?= --store file memory --runs 40
THROUGHPUT_ARGS ?= --runs 500
FANOUT_ARGS ?= --n 10 100 500 1000 --repeat 3 --raw-repeat 1 --raw-max-n 100
WAITING_ARGS ?= --runs 5000 --raw-runs 5000 --release 1000 --checkpoints 1000 5000
TOOL_ARGS ?= --runs 10
MCP_ARGS ?= --runs 10
FLOW_ARGS ?= --runs 10
STREAM_ARGS ?= --runs 10 --tokens 50
SSE_ARGS ?= --subscribers 100
SESSION_ARGS ?= --turns 20
OVERHEAD_ARGS ?= --runs 6 --fanout-repeat 2
PENDING_ARGS ?= --runs 500 --silent 50 --repeat 3
HISTORY_ARGS ?=

# $(call bench_all,PARTS,SIZES,CHARTS DIR): empty BENCH_OUT, run PARTS one after the
# other (going on past a failed one, failing at the end), report, print the wall time.
define bench_all
	@mkdir -p .bench && : > $(BENCH_OUT); started=$$(date +%s); \
	$(MAKE) --no-print-directory -j1 -k $(1) $(2); status=$$?; \
	$(BIN)/python bench/report.py $(BENCH_OUT) --charts $(3) || status=1; \
	echo "make $@: $$(( $$(date +%s) - started )) s wall time in all"; exit $$status
endef

bench: bench-setup
	$(call bench_all,$(BENCH_PARTS),,docs)

# About two minutes, the smoke test: the goals' parts, small; charts into .bench/.
bench-quick: bench-setup
	$(call bench_all,bench-step bench-throughput bench-fanout bench-waiting bench-tools \
		bench-flow,STEP_ARGS="--store file memory --runs 4" THROUGHPUT_ARGS="--runs 100" \
		FANOUT_ARGS="--n 10 100 --repeat 1" WAITING_ARGS="--runs 200 --checkpoints 100 200" \
		TOOL_ARGS="--runs 4" MCP_ARGS="--runs 4" FLOW_ARGS="--runs 4",.bench)

bench-setup: setup
	@$(BIN)/python -c "import matplotlib" 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet matplotlib

bench-step: bench-setup
	$(BENCH_RUN) step bench/step_bench.py $(STEP_ARGS)

bench-throughput: bench-setup
	$(BENCH_RUN) throughput bench/throughput_bench.py $(THROUGHPUT_ARGS)

bench-fanout: bench-setup
	$(BENCH_RUN) fanout bench/fanout_bench.py $(FANOUT_ARGS)

bench-waiting: bench-setup
	$(BENCH_RUN) waiting bench/waiting_bench.py $(WAITING_ARGS)

bench-tools: bench-setup
	$(BENCH_RUN) tool bench/tool_bench.py $(TOOL_ARGS)
	$(BENCH_RUN) mcp bench/mcp_bench.py $(MCP_ARGS)

bench-flow: bench-setup
	$(BENCH_RUN) flow bench/flow_bench.py $(FLOW_ARGS)

bench-streams: bench-setup
	$(BENCH_RUN) stream bench/stream_bench.py $(STREAM_ARGS)
	$(BENCH_RUN) sse bench/sse_bench.py $(SSE_ARGS)

bench-session: bench-setup
	@test ! -f bench/session_bench.py || $(BENCH_RUN) session bench/session_bench.py $(SESSION_ARGS)

bench-overhead: bench-setup
	$(BENCH_RUN) overhead bench/overhead_bench.py $(OVERHEAD_ARGS)

bench-pending: bench-setup
	$(BENCH_RUN) pending bench/pending_bench.py $(PENDING_ARGS)

# The 100-call, ~200k-token conversation of issue "No size limits": its history's size.
bench-history: bench-setup
	$(BENCH_RUN) history bench/history_bench.py $(HISTORY_ARGS)

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

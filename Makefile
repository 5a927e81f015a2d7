# Two commands for a new user: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
UV_PIN := uv==0.13.9
export UV_PYTHON_DOWNLOADS := never
# Everything run from here is on a small machine: the Spark driver's JVM profile tuned for it (core/settings.py).
export SEGMENTS_SPARK_PROFILE ?= small-machine
JOB_ENV := .venv
AIRFLOW_ENV := .venv-airflow
PYTEST_JOB := $(JOB_ENV)/bin/python -m pytest -p no:cacheprovider
PYTEST_AIRFLOW := $(AIRFLOW_ENV)/bin/python -m pytest -p no:cacheprovider

.PHONY: help prereqs install demo test test-fast lock clean bench-score bench-features ablation example up status down

help:
	@echo "make demo       install, seed a synthetic warehouse, train, run the daily DAG for 3 dates"
	@echo "make test       install and run the whole test suite (needs PostgreSQL for the BI tests)"
	@echo "make test-fast  unit tests + DAG parse tests (a couple of minutes)"
	@echo "make install    create .venv (jobs) and .venv-airflow (Airflow) from locks/"
	@echo "make lock       re-resolve requirements/*.in into locks/*.txt"
	@echo "make bench-score scoring users/s inside Spark on a seeded 50k-user warehouse (USERS=n to change)"
	@echo "make bench-features  feature stage, Spark vs DuckDB: daily run + full rebuild (N=200000 users, D=90 days)"
	@echo "make bench-daily     the whole daily run (segments run) of this checkout vs BASE (a git ref, default HEAD), N users"
	@echo "make bench-ingest    segments ingest vs a plain DuckDB COPY, CSV and Parquet (ROWS=3000000 orders, 90 days)"
	@echo "make bench-orchestration  the daily DAG per date (300 users) vs BASE; a 14-date backfill on the stack vs a loop"
	@echo "make ablation   teacher methods x metrics on a seeded 50k-user warehouse -> bench/ABLATION.md"
	@echo "make example    the worked example on real purchases (The Complete Journey): ingest, train, label, evaluate"
	@echo "make clean      delete generated state under var/ (keeps the environments)"
	@echo "make up         start the production-like stack: Airflow (api-server, scheduler, dag-processor, triggerer),"
	@echo "                MLflow server, Spark master + worker, on PostgreSQL; commands of this checkout then use it"
	@echo "make status     health and URL of every component of the stack (exit 1 when one is down)"
	@echo "make down       stop every process of the stack (its databases and state are kept)"

prereqs:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv)." >&2; exit 1; }
	@command -v java >/dev/null || [ -n "$$JAVA_HOME" ] || { echo "error: Java not found; Spark needs a JDK 17. Install it: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
	@java -version 2>&1 | grep -qE 'version "(17|21)' || { echo "error: Spark 4 needs Java 17 or 21; found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

$(CURDIR)/.tools/bin/uv:
	@echo "==> bootstrapping uv into .tools/"
	@$(PYTHON) -m venv .tools && .tools/bin/pip install -q $(UV_PIN)

# Stamps make `make install` a no-op until a lock file or pyproject.toml changes. --compile-bytecode: every
# process (each task, each test) would otherwise compile the libraries' sources again wherever bytecode
# cannot be written (PYTHONDONTWRITEBYTECODE, read-only images): ~5 s per process here.
$(JOB_ENV)/.installed: locks/job.txt pyproject.toml | $(UV)
	@echo "==> job environment ($(JOB_ENV)): pyspark, tensorflow-cpu, mlflow, great-expectations ..."
	@[ -x $(JOB_ENV)/bin/python ] || $(UV) venv -q --python $(PYTHON) $(JOB_ENV)
	@$(UV) pip sync -q --compile-bytecode --python $(JOB_ENV)/bin/python locks/job.txt
	@$(UV) pip install -q --python $(JOB_ENV)/bin/python --no-deps -e .
	@touch $@

$(AIRFLOW_ENV)/.installed: locks/airflow.txt pyproject.toml | $(UV)
	@echo "==> Airflow environment ($(AIRFLOW_ENV)): apache-airflow + spark/postgres providers"
	@[ -x $(AIRFLOW_ENV)/bin/python ] || $(UV) venv -q --python $(PYTHON) $(AIRFLOW_ENV)
	@$(UV) pip sync -q --compile-bytecode --python $(AIRFLOW_ENV)/bin/python locks/airflow.txt
	@$(UV) pip install -q --python $(AIRFLOW_ENV)/bin/python --no-deps -e .
	@touch $@

install: prereqs $(JOB_ENV)/.installed $(AIRFLOW_ENV)/.installed
	@# pyspark is built from an sdist; pruning keeps uv's cache from growing by ~1 GB per rebuild.
	@$(UV) cache prune -q 2>/dev/null || true

lock: | $(UV)
	$(UV) pip compile -q --python-version 3.11 --custom-compile-command "make lock" requirements/job.in -o locks/job.txt
	$(UV) pip compile -q --python-version 3.11 --custom-compile-command "make lock" requirements/airflow.in -o locks/airflow.txt

demo: install
	@bin/demo

test: install
	$(PYTEST_JOB) tests/unit tests/integration
	$(PYTEST_AIRFLOW) tests/dags

test-fast: install
	$(PYTEST_JOB) tests/unit
	$(PYTEST_AIRFLOW) tests/dags

# Scoring throughput inside Spark (users/s); seeds var/bench/score (50k users) once if missing.
bench-score: install
	$(JOB_ENV)/bin/python bench/score.py $(if $(USERS),--users $(USERS))

# Feature stage: (a) the daily run and (b) a full user_daily rebuild, timed against DuckDB on the same files
# and checked on sampled users. Seeds var/bench/<N>x<D> once; see docs/benchmarks.md.
N ?= 200000
D ?= 90
END ?= 2026-06-30
bench-features: install
	$(JOB_ENV)/bin/python -m bench.bench_features --users $(N) --days $(D) --end-date $(END) $(if $(BENCH_HOME),--home $(BENCH_HOME))

# The whole daily run, segments run --ds END, of this checkout against BASE (a git ref, default HEAD), alternated
# in one session; prepares var/bench/daily-<N>x<D> once; see docs/benchmarks.md.
.PHONY: bench-daily
BASE ?= HEAD
bench-daily: install
	$(JOB_ENV)/bin/python -m bench.bench_daily --users $(N) --days $(D) --end-date $(END) --baseline $(BASE) $(if $(BENCH_HOME),--home $(BENCH_HOME))

# segments ingest against a plain DuckDB COPY ... PARTITION_BY on the same files (CSV and Parquet), in one run;
# generates var/bench/ingest-<ROWS>x<D> once; see docs/benchmarks.md.
.PHONY: bench-ingest
ROWS ?= 3000000
bench-ingest: install
	$(JOB_ENV)/bin/python -m bench.bench_ingest --rows $(ROWS) --days $(D) $(if $(BENCH_HOME),--home $(BENCH_HOME))

# Orchestration cost: (1) the daily DAG for one date (airflow dags test, 300 users) of this checkout vs BASE;
# (2) a 14-date backfill of 20,000 users through the stack's scheduler vs `segments run` in a shell loop.
# PART=dag|backfill runs one of them; see docs/benchmarks.md.
.PHONY: bench-orchestration
PART ?= all
bench-orchestration: install
	$(JOB_ENV)/bin/python -m bench.bench_orchestration --part $(PART) --baseline $(BASE)

# The worked public example: a real purchase log through the whole platform, evaluated by the next 90 days
# against RFM baselines (examples/completejourney/run.sh; CUTOFFS="..." to change the dates).
example: install
	examples/completejourney/run.sh

# Segmentation ablation (ml/ablation.py): seeds var/bench/ablation once (ABLATION_USERS, default 50000).
ablation: install
	bin/ablation

clean:
	@[ ! -e var/stack/stack.env ] || { echo "error: the stack of var/ is up: make down first" >&2; exit 1; }
	rm -rf var

# The production-like stack on this machine (app/stack.py; docs/orchestration.md, "The production-like stack").
up: install
	@$(JOB_ENV)/bin/python -m app.stack up

status:
	@$(JOB_ENV)/bin/python -m app.stack status

down:
	@$(JOB_ENV)/bin/python -m app.stack down

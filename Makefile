# OPOS Tracker: `make run` starts the service on embedded defaults with demo
# data; `make test` installs what the tests need and runs them.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
export UV_PYTHON_DOWNLOADS := never

.PHONY: install axe bubblewrap run test test-faults lint format migrations-check slurm-up slurm-down xrootd-up xrootd-down bench bench-e2e clean

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	@$(PYTHON) -m venv .uv || { echo "cannot create a virtualenv: on Debian run 'apt-get install python3-venv'" >&2; exit 1; }
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced bubblewrap axe

# axe-core (npm) is the accessibility check the browser journeys run inside each page;
# it is fetched here, never committed. Without npm the journeys say so.
AXE := .axe/node_modules/axe-core/axe.min.js
axe: $(AXE)
$(AXE):
	@command -v npm >/dev/null 2>&1 && npm install --silent --no-save --prefix .axe axe-core@4 \
	    || echo "npm is missing: the browser journeys' accessibility check needs axe-core (apt-get install npm)" >&2

# Local jobs run in a bubblewrap sandbox (README, "Jobs and the service's secrets"): install
# it when it is missing and we may (root, apt); otherwise say how. Without it the local
# backend refuses to run jobs unless OPOS_LOCAL_ISOLATION=off.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        $(APT_GET) install -y bubblewrap || { $(APT_GET) update && $(APT_GET) install -y bubblewrap; }; \
	    else \
	        echo "bwrap is missing: local jobs will be refused. Run 'apt-get install bubblewrap' as root, or set OPOS_LOCAL_ISOLATION=off (trusted code only)." >&2; \
	    fi; }

run: install
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo
	@echo "OPOS Tracker on http://127.0.0.1:8000 (Ctrl-C stops web, worker and beat)"
	$(BIN)/honcho start -f Procfile

# The suite runs in parallel (pytest-xdist): each worker has its own test database, Redis
# database, ports and temporary folders (tests/parallel.py). On PostgreSQL the first worker
# migrates a template database once and every worker's database is a copy of it. Each
# worker is handed its next two tests as it finishes, long ones first (tests/conftest.py),
# so none is left with a pile of long ones at the end. Four workers keep 2 cores busy (the
# long tests wait on Slurm, Celery and Chromium; the rest compute); on 2 cores the whole
# suite took about 9 minutes with nothing else running, far longer on a shared machine
# (README, "Running the tests"). TEST_WORKERS=0 runs them serially; PYTEST_ARGS adds
# options (PYTEST_ARGS="tests/opos -x").
TEST_WORKERS ?= 4
# Bytecode caches are written even where the environment turns them off
# (PYTHONDONTWRITEBYTECODE, set in many container images): otherwise every worker compiles
# and assertion-rewrites every module again, and so does every process the tests start
# (the CLI, Celery workers, servers), several seconds of CPU each time.
test: export PYTHONDONTWRITEBYTECODE :=
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 2 $(PYTEST_ARGS)

# Fault trials at full size (300-job campaigns on PostgreSQL, Redis, Celery and Slurm;
# 20 worker kills, 45 s outages: docs/reliability.md) and security fuzzing with many more
# examples. Needs root, redis-server and a running Slurm cluster (make slurm-up).
test-faults: export PYTHONDONTWRITEBYTECODE :=
test-faults: install
	OPOS_REQUIRE_FAULTS=1 OPOS_FAULT_JOBS=100 OPOS_FAULT_KILLS=20 OPOS_FAULT_HOLD_S=45 \
	OPOS_FUZZ_EXAMPLES=30 OPOS_FUZZ_COVERAGE=all OPOS_PROPERTY_EXAMPLES=1000 \
		$(BIN)/pytest tests/faults tests/security

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: install
	$(MANAGE) makemigrations --check --dry-run

slurm-up:
	bash scripts/slurm/up.sh all

slurm-down:
	bash scripts/slurm/down.sh all

xrootd-up:
	bash scripts/xrootd/up.sh

xrootd-down:
	bash scripts/xrootd/down.sh

# Benchmarks at production scale (docs/performance.md). Needs PostgreSQL, the Slurm
# cluster (make slurm-up; root) and wrk (apt-get install -y wrk); creates and uses its
# own bench* databases. BENCH_ARGS="--generate always" rebuilds them, "--quick" is small.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# End to end on the Slurm cluster: a three-stage campaign through the tracker (beat and 1, 2,
# 4 workers) against the same jobs straight through sbatch; about 10 minutes per worker count
# and repetition at the default 1,002 jobs. BENCH_E2E_ARGS="--jobs 100 --repeat 1" is small.
bench-e2e: install
	$(BIN)/python -m bench.e2e $(BENCH_E2E_ARGS)

clean:
	rm -rf .uv $(VENV) data

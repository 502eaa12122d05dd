# Two entry points for a fresh machine: `make run` and `make test`. Both bootstrap what they need, from uv.lock.
# `make run` takes DATA_DIR, HOST and PORT, e.g. `make run PORT=8080`.
PYTHON ?= python3
# uv itself, pinned, in a folder of its own; it installs both environments exactly as uv.lock says.
UV_VERSION := 0.13.9
UV := .cache/uv-$(UV_VERSION)/bin/uv
# The server's environment (`make run`, and the README's `.venv/bin/packyard`) holds only what the server runs;
# the tests and benchmarks run in their own, with the `test` dependency group added.
VENV := .venv
TEST_VENV := .venv-test
BIN := $(TEST_VENV)/bin
SYNC = UV_PROJECT_ENVIRONMENT=$(1) UV_PYTHON_DOWNLOADS=never $(UV) sync --locked --python $(PYTHON) -q $(2) || \
	{ echo "error: could not install what uv.lock pins; if uv said the lockfile needs to be updated, run \`make lock\`."; exit 1; }

.PHONY: run test lint lock wheelhouse bench bench-deploy bench-apps bench-scaling bench-sandbox bench-access bench-handmade bench-nodes bench-workers bench-cluster clean

$(UV):
	$(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore --target .cache/uv-$(UV_VERSION) uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	@$(call SYNC,$(VENV),--no-default-groups)
	@touch $@

$(TEST_VENV)/.synced: $(UV) pyproject.toml uv.lock
	@$(call SYNC,$(TEST_VENV),--group test)
	@touch $@

STAMP := $(TEST_VENV)/.synced

# Content runs in bubblewrap's sandbox (docs/SECURITY.md); Debian's package, installed once.
BWRAP = @command -v bwrap >/dev/null || { $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -qq && \
	$(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -qq bubblewrap; }

run: $(VENV)/.synced
	$(BWRAP)
	$(VENV)/bin/packyard run $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

# Refresh uv.lock after changing the dependencies in pyproject.toml (`make lock ARGS=--upgrade` moves every pin).
lock: $(UV)
	$(UV) lock $(ARGS)

# Refresh the test apps' wheelhouses (tests/wheelhouse/*.txt): every package they install, pinned with hashes.
wheelhouse: $(UV)
	for name in api apps notebook bare echo; do \
		$(UV) pip compile -q --upgrade --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
			--only-binary :all: --custom-compile-command "make wheelhouse" \
			tests/wheelhouse/$$name.in -o tests/wheelhouse/$$name.txt || exit 1; \
	done

test: $(STAMP)
	$(BWRAP)
	@command -v gpg >/dev/null || (apt-get update -qq && apt-get install -y -qq gnupg)  # signing tests
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)  # page tests (tests/browser.py)
	@command -v Rscript >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends r-base-core)  # R repositories (tests/test_r_repos.py)
	@command -v haproxy >/dev/null || (apt-get update -qq && apt-get install -y -qq haproxy)  # tests/balancer.py
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)  # the test IdP (tests/idp.py)
	@test tests/idp/node_modules/.package-lock.json -nt tests/idp/package-lock.json || \
		npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

# wrk drives the load and nginx serves the static baseline; both come from Debian's packages.
bench: $(STAMP)
	$(BWRAP)
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk nginx; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Deploy, redeploy and rollback times, against venv+pip and bare uv for the same requirements.
bench-deploy: $(STAMP)
	$(BWRAP)
	$(BIN)/python bench/deploy.py $(BENCH_ARGS)

# Cold start to first byte for each app type (FastAPI, Flask, Dash, Shiny, Streamlit, Bokeh).
bench-apps: $(STAMP)
	$(BWRAP)
	$(BIN)/python bench/apps.py $(BENCH_ARGS)

# Scale to zero and back, and requests/s through the proxy against the app on its own port (needs wrk).
bench-scaling: $(STAMP)
	$(BWRAP)
	$(BIN)/python bench/scaling.py $(BENCH_ARGS)

# The sandbox's cost: cold start, cached redeploy, scale from zero and the proxy, with it off and on (needs wrk).
bench-sandbox: $(STAMP)
	$(BWRAP)
	@command -v wrk >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk; }
	$(BIN)/python bench/sandbox.py $(BENCH_ARGS)

# The proxy's access check: a viewer's session cookie against her API key, in one run (needs wrk).
bench-access: $(STAMP)
	$(BWRAP)
	@command -v wrk >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk; }
	$(BIN)/python bench/access.py $(BENCH_ARGS)

# Each hand-written part (hot path, multipart splitter, proxy client, file server) against its library (needs wrk).
bench-handmade: $(STAMP)
	@command -v wrk >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk; }
	$(BIN)/python bench/handmade.py $(BENCH_ARGS)

# Issue 16's figures: pages and uploads through HAProxy with one node and two, S3 (moto) against the local store.
# Needs the test suite's PostgreSQL (PACKYARD_TEST_PG), as the fault tests do.
bench-cluster: $(STAMP)
	@command -v wrk >/dev/null && command -v haproxy >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk haproxy; }
	$(BIN)/python bench/cluster.py --out bench/cluster-results.md $(BENCH_ARGS)

# Two nodes on one PostgreSQL database (PACKYARD_TEST_PG, as the tests): a redeploy on one to new code served by the other.
bench-nodes: $(STAMP)
	$(BWRAP)
	$(BIN)/python bench/redeploy_nodes.py $(BENCH_ARGS)

# `packyard run --workers 1` against `--workers 2` on PostgreSQL: page throughput (wrk) and uploads/s.
bench-workers: $(STAMP)
	@command -v wrk >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk; }
	$(BIN)/python bench/workers.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TEST_VENV) .cache .pytest_cache .ruff_cache .mypy_cache

# Two entry points for a fresh machine: `make run` and `make test`. Both bootstrap the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint format bench bench-deploy bench-apps bench-scaling bench-handmade clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/packyard run $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: $(STAMP)
	@command -v gpg >/dev/null || (apt-get update -qq && apt-get install -y -qq gnupg)  # signing tests
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)  # page tests (tests/browser.py)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

# wrk drives the load and nginx serves the static baseline; both come from Debian's packages.
bench: $(STAMP)
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk nginx; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Deploy, redeploy and rollback times, against venv+pip and bare uv for the same requirements.
bench-deploy: $(STAMP)
	$(BIN)/python bench/deploy.py $(BENCH_ARGS)

# Cold start to first byte for each app type (FastAPI, Flask, Dash, Shiny, Streamlit, Bokeh).
bench-apps: $(STAMP)
	$(BIN)/python bench/apps.py $(BENCH_ARGS)

# Scale to zero and back, and requests/s through the proxy against the app on its own port (needs wrk).
bench-scaling: $(STAMP)
	$(BIN)/python bench/scaling.py $(BENCH_ARGS)

# Each hand-written part (hot path, multipart splitter, proxy client, file server) against its library (needs wrk).
bench-handmade: $(STAMP)
	@command -v wrk >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -q wrk; }
	$(BIN)/python bench/handmade.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

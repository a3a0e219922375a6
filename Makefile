# Two commands set everything up: `make dev` serves, `make test` tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PORT   ?= 8080

.PHONY: dev test test-fast lint system-deps bench clean

# Serving needs the package alone; the test tools (browser driver, fuzzer, PostgreSQL client)
# come with the first `make test`.
$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## dev: serve on http://127.0.0.1:8080 (PORT=9000 make dev for another port) with the dev
##      runner, the in-process store unless SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set,
##      and the example recipes of docs/examples/recipes.toml (OPS_RECIPES= for none).
##      DEV_LOCAL_LLM=0 make dev runs those recipes for real, with a random admin token unless
##      SETTINGS_ADMIN_TOKEN is set; as root, set OPS_RECIPE_USER.
dev: $(STAMP)
	@dev="$${DEV_LOCAL_LLM:-1}"; token="$$SETTINGS_ADMIN_TOKEN"; \
	case "$$(printf %s "$$dev" | tr A-Z a-z)" in 1|true|yes|on) token="$${token:-adm}";; \
	*) token="$${token:-$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))')}";; esac; \
	echo "admin token: $$token (export SETTINGS_ADMIN_TOKEN=$$token in the shell that calls the API)"; \
	SETTINGS_ADMIN_TOKEN="$$token" DEV_LOCAL_LLM="$$dev" \
	OPS_RECIPES="$${OPS_RECIPES-docs/examples/recipes.toml}" \
	OPS_BIND="$${OPS_BIND:-127.0.0.1:$(PORT)}" WEB_CONCURRENCY=1 \
	exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## system-deps: the programs the tests start for real (curl, PostgreSQL, nginx, Chromium)
system-deps:
	bash tests/system-deps.sh

## test: install what the tests need, check the code with ruff, then run every test
test: $(TEST_STAMP) system-deps lint
	$(BIN)/pytest

## lint: ruff, with the rules in pyproject.toml
lint: $(TEST_STAMP)
	$(BIN)/ruff check .

## test-fast: only the tests that start no outside program
test-fast: $(TEST_STAMP)
	$(BIN)/pytest -m "not live"

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

## bench: measure against Flask-SSE on Redis and write docs/performance.md (~15 min)
bench: $(BENCH_STAMP)
	bash bench/system-deps.sh
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

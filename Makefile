# trading-gateway: the two commands are `make demo` and `make test`.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# Node tools for the contract checks (buf, @grpc/proto-loader), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck proto config-doc constraints bench bench-quick clean venv node

# The editable install maps server/, client/ and simulator/ to trading_gateway.server,
# trading_gateway.client and trading_gateway.simulator (setup.py); the plain install is the
# client only, the server extra adds the gateway's dependencies.
# Every Python package is pinned by constraints.txt (make constraints regenerates it), so a
# fresh machine installs what CI and the image run.
CONSTRAINTS := constraints.txt

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip -c $(CONSTRAINTS)

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[server,dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "make: npm not found; the Node contract checks (buf, proto-loader) will skip" >&2; fi

node: $(NODE_STAMP)

## Run the simulator and the gateway together (in-memory cache, no credentials).
demo: $(STAMP)
	$(BIN)/trading-gateway demo

## Lint, type-check and run the whole suite against a real Redis and the simulator.
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# pytest exits 5 when it collected nothing: a broken harness, never a pass.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate the checked-in protobuf code.
proto: $(STAMP)
	$(BIN)/python protos/generate.py

## Re-pin every Python package: the newest that pyproject.toml allows, from a fresh venv.
constraints:
	rm -rf build/constraints-venv
	$(PY) -m venv build/constraints-venv
	build/constraints-venv/bin/pip install --quiet --upgrade pip
	build/constraints-venv/bin/pip install --quiet '.[server,dev,bench]'
	{ echo "# Exact versions of every Python package (runtime, dev and bench extras), used by"; \
	  echo "# make (venv), the Dockerfile and CI. Regenerate with make constraints."; \
	  build/constraints-venv/bin/pip freeze --all --exclude-editable \
	    | grep -v -i -e '^trading-gateway'; } > $(CONSTRAINTS)
	rm -rf build/constraints-venv

## Regenerate README's settings table and .env.example from server/config.py.
config-doc: $(STAMP)
	$(BIN)/python -m trading_gateway.server.config_doc

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

bench-quick: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) node_modules build *.egg-info .mypy_cache .ruff_cache

# The two commands: `make run` and `make test`. Both create or reuse .venv and install pinned
# dependencies from PyPI (and Debian's chromium and strace for two tests, nodejs and the npm
# packages of test/foxglove_client for the Foxglove client test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run` stays on this host unless told otherwise; pick your own domain on a shared network.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 42
CONFIG ?= config/sim.yaml
PYTEST_ARGS ?=

.PHONY: all venv bytecode browser tools foxglove-client run test test-stress lint bench soak clean

all: test

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Our modules compiled once. Where PYTHONDONTWRITEBYTECODE is set, every process the suite
# starts (hundreds) compiles what it imports again: ~0.15 s of CPU per worker, manager or bridge.
bytecode: venv
	$(BIN)/python -m compileall -q src bench test launch

# Headless Chromium for the dashboard test; Playwright's own browser download does not work here.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo 'chromium missing: sudo apt-get install chromium (browser tests will skip)'; fi; }

# strace for the test that an emulated camera sends nothing on the network.
tools:
	@command -v strace >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; } || \
	    echo 'strace could not be installed (the network test will skip)'; \
	  else echo 'strace missing: sudo apt-get install strace (the network test will skip)'; fi; }

# The Foxglove ecosystem's own client (test_bridge_foxglove.py): Debian's nodejs where node is
# missing, then the npm packages pinned by test/foxglove_client/package-lock.json.
foxglove-client:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } || \
	    echo 'nodejs could not be installed (the Foxglove client test will skip)'; \
	  else echo 'node missing: sudo apt-get install nodejs npm (the Foxglove client test will skip)'; fi; }
	@! command -v npm >/dev/null || npm ci --prefix test/foxglove_client --no-audit --no-fund \
	  --loglevel=error || echo 'npm ci failed (the Foxglove client test will skip)'

run: venv bytecode
	$(BIN)/sensor-workers up --config $(CONFIG)

test: venv bytecode browser tools foxglove-client
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The integration tests RUNS times, then once with a CPU hog on every core; failures with logs.
test-stress: venv bytecode browser tools foxglove-client
	$(BIN)/python test/stress.py --runs $(or $(RUNS),3) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src test bench launch setup.py
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench

soak: venv
	$(BIN)/python -m bench.soak --minutes $(or $(MINUTES),10)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

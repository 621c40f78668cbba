# Switchboard: `make run` starts everything, `make test` runs the whole suite. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test
PORT   ?= 8080

.PHONY: run test lint bench install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` installs what running needs; `make test` (and lint, bench) adds the test extras.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TESTSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(TESTSTAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/switchboard run --port $(PORT)

test: $(TESTSTAMP) chromium lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (pyflakes, import order, bugbear, async hazards) and mypy over the product packages.
lint: $(TESTSTAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/mypy

# The /admin page's browser test drives Debian's chromium (through playwright, with no browser download).
# Installed here when missing and we are root; otherwise that one test is skipped with a message.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed and cannot be: the /admin browser test will be skipped"; }

bench: $(TESTSTAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache

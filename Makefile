# Switchboard: `make run` starts everything, `make test` runs the whole suite. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8080

.PHONY: run test lint bench install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/switchboard run --port $(PORT)

test: $(STAMP) chromium lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (pyflakes, import order, bugbear, async hazards) and mypy over the product packages.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/mypy

# The /admin page's browser test drives Debian's chromium (through playwright, with no browser download).
# Installed here when missing and we are root; otherwise that one test is skipped with a message.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed and cannot be: the /admin browser test will be skipped"; }

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache

# The two commands: `make run` starts the platform, `make test` runs every check.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=

.PHONY: run test lint typecheck unit bench sync uv migrate asyncapi clean

uv:
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv

sync: uv
	@$(UV) sync --frozen --all-groups --quiet 2>/dev/null || $(UV) sync --all-groups --quiet

run: sync
	$(UV) run --frozen sbx-dev

migrate: sync
	$(UV) run --frozen sbx-migrate

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: sync
	$(UV) run --frozen mypy libs services tools

test: sync lint typecheck
	$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: sync
	$(UV) run --frozen python -m bench

clean:
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache

# The two commands: `make run` starts the platform, `make test` runs every check.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
# Idle sandboxes of bench/scale.py (`make bench SCALE_SANDBOXES=50`).
SCALE_SANDBOXES ?= 300

.PHONY: agent run run-cluster test lint typecheck unit bench sync uv migrate asyncapi nats-config images base-image clean ui

uv:
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv

sync: uv
	@$(UV) sync --frozen --all-groups --quiet 2>/dev/null || $(UV) sync --all-groups --quiet

# Builds the web dashboard first when it is missing or stale (needs Node.js and npm; without
# them the platform still starts, and /ui/ says how to build it), and the in-sandbox agent
# (needs Go; without it sandboxes run without the agent and exec goes through docker exec).
run: sync
	$(UV) run --frozen sbx-dev

# The same on a three-server NATS cluster on loopback (client ports 4222-4224), every stream
# replicated three times: docs/scale-out.md, "The message bus".
run-cluster: sync
	$(UV) run --frozen sbx-dev --nats-cluster 3

# The web dashboard (clients/web) built into clients/web/dist, which the API serves at /ui/.
ui: sync
	$(UV) run --frozen python -m sbx_devstack.webui

# The in-sandbox agent (agent/, Go standard library only), built static into
# .build/agent/sbx-agent when missing or stale; its Go unit tests run in `make test`.
agent: sync
	$(UV) run --frozen python -m sbx_devstack.agent

migrate: sync
	$(UV) run --frozen sbx-migrate

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

# The Python SDK (clients/python) supports Python 3.10: it is checked against that version.
typecheck: sync
	$(UV) run --frozen mypy libs services tools
	$(UV) run --frozen mypy --python-version 3.10 clients/python/src

test: sync lint typecheck agent
	cd agent && CGO_ENABLED=0 GOPROXY=off go vet ./... && CGO_ENABLED=0 GOPROXY=off go test ./...
	$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: sync
	SBX_BENCH_SCALE_SANDBOXES=$(SCALE_SANDBOXES) $(UV) run --frozen python -m bench

# The AsyncAPI document of the NATS subjects (FastStream), from sbx_common's subjects and messages.
asyncapi: sync
	$(UV) run --frozen python -m sbx_devstack.asyncapi docs/asyncapi.json

# The NATS users and permissions of compose and Kubernetes, from sbx_common/nats_permissions.py
# (Kustomize reads files under infra/k8s only: Kubernetes gets a copy).
nats-config: sync
	$(UV) run --frozen python -m sbx_common.nats_permissions > infra/nats/auth.conf
	cp infra/nats/auth.conf infra/k8s/nats/auth.conf

# Service images from a wheelhouse built on the host (no index is reached inside the build).
# SBX_BASE_IMAGE (default python:3.11-slim), SBX_IMAGE_TAG (default latest): docs/deployment.md.
images: sync
	UV="$(UV)" infra/docker/build-images.sh

# A Debian bookworm + python3 base made with debootstrap, for machines that cannot pull images:
# then `SBX_BASE_IMAGE=sbx-python-base:3.11-bookworm make images`.
base-image:
	infra/docker/make-local-base.sh

clean:
	rm -rf .state .build .pytest_cache .mypy_cache .ruff_cache clients/web/dist test-artifacts

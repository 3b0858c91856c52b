#!/usr/bin/env bash
# Build the five service images without reaching a package index from inside a container.
#
# On the host: build the workspace's wheels (`uv build`), export each service's locked
# requirements (`uv export`), download or build every third-party wheel into one wheelhouse
# (`pip wheel`, run by uv with the image's Python version), then `docker build` each
# infra/docker/<service>.Dockerfile with that folder as the build context.
#
#   infra/docker/build-images.sh                 # base python:3.11-slim, tag latest
#   SBX_BASE_IMAGE=sbx-python-base:3.11-bookworm infra/docker/build-images.sh   # local base
#   SBX_IMAGE_TAG=0.1.0 infra/docker/build-images.sh api orchestrator           # some services
#
# SBX_BASE_IMAGE must be a Debian-like image with python3 of version SBX_PYTHON_VERSION (3.11):
# the wheelhouse is built for that version. infra/docker/make-local-base.sh makes one with
# debootstrap on machines that cannot pull images.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

BASE_IMAGE="${SBX_BASE_IMAGE:-python:3.11-slim}"
TAG="${SBX_IMAGE_TAG:-latest}"
PYTHON_VERSION="${SBX_PYTHON_VERSION:-3.11}"
CONTEXT="${SBX_IMAGE_CONTEXT:-$ROOT/.build/images}"
ALL_SERVICES=(api orchestrator log-shipper reaper metrics-collector webhooks)
if [ "$#" -gt 0 ]; then SERVICES=("$@"); else SERVICES=("${ALL_SERVICES[@]}"); fi

log() { printf '==> %s\n' "$*" >&2; }

# The uv executable itself (not a shell shim such as pyenv's), copied into the build context.
find_uv_binary() {
  local candidate
  for candidate in "${UV_BIN:-}" "$(command -v pyenv >/dev/null 2>&1 && pyenv which uv 2>/dev/null || true)" \
      "$(command -v uv || true)" "$HOME/.local/bin/uv"; do
    [ -n "$candidate" ] && [ -f "$candidate" ] || continue
    if [ "$(head -c 4 "$candidate" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      echo "$candidate"
      return 0
    fi
  done
  echo "uv executable not found: set UV_BIN" >&2
  return 1
}

UV="${UV:-uv}"
for svc in "${SERVICES[@]}"; do
  [ -f "infra/docker/$svc.Dockerfile" ] || { echo "unknown service: $svc" >&2; exit 2; }
done

log "build context $CONTEXT"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/wheels" "$CONTEXT/requirements"
cp "$(find_uv_binary)" "$CONTEXT/uv"

log "workspace wheels"
for pkg in sbx-common "${SERVICES[@]/#/sbx-}"; do
  "$UV" build --quiet --package "$pkg" --wheel --out-dir "$CONTEXT/wheels"
done

# The in-sandbox agent (static Go, docs/agent.md): the orchestrator's image carries it.
if printf '%s\n' "${SERVICES[@]}" | grep -qx orchestrator; then
  log "in-sandbox agent"
  cp "$("$UV" run --frozen python -m sbx_devstack.agent)" "$CONTEXT/sbx-agent"
fi

log "locked requirements per service"
for svc in "${SERVICES[@]}"; do
  "$UV" export --quiet --frozen --no-dev --package "sbx-$svc" --no-emit-workspace --no-hashes \
    --no-header --no-annotate --output-file "$CONTEXT/requirements/$svc.txt"
done
sort -u "$CONTEXT"/requirements/*.txt > "$CONTEXT/requirements/all.txt"

log "third-party wheels for Python $PYTHON_VERSION"
"$UV" tool run --quiet --python "$PYTHON_VERSION" --from pip pip wheel --quiet --no-deps \
  --wheel-dir "$CONTEXT/wheels" --requirement "$CONTEXT/requirements/all.txt"

for svc in "${SERVICES[@]}"; do
  log "image sbx-$svc:$TAG (base $BASE_IMAGE)"
  DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build --quiet \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --file "infra/docker/$svc.Dockerfile" \
    --tag "sbx-$svc:$TAG" \
    "$CONTEXT"
done
log "done: ${SERVICES[*]/#/sbx-} (tag $TAG)"

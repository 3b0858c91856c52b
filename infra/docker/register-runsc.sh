#!/usr/bin/env bash
# Installs gVisor (Debian's runsc) when missing and registers it with the local Docker engine as
# runtime "runsc", merged into /etc/docker/daemon.json, then reloads dockerd with SIGHUP.
# The runtime arguments are the ones that work under Docker here: gVisor's own network stack
# refuses to run in the root network namespace, and with --network=host the sandbox still gets
# its own container network namespace.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CONFIG="${DOCKER_DAEMON_CONFIG:-/etc/docker/daemon.json}"

if ! command -v runsc >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq runsc
fi
RUNSC="$(command -v runsc)"

$SUDO mkdir -p "$(dirname "$CONFIG")"
$SUDO python3 - "$CONFIG" "$RUNSC" <<'PY'
import json, os, sys

path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        config = json.load(f)
wanted = {"path": runsc, "runtimeArgs": ["--platform=ptrace", "--network=host"]}
runtimes = config.setdefault("runtimes", {})
if runtimes.get("runsc") != wanted:
    runtimes["runsc"] = wanted
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
PY

# A running engine reloads its runtimes on SIGHUP; a stopped one reads the file when it starts.
if pid="$(pidof dockerd)"; then
  $SUDO kill -HUP $pid
  for _ in $(seq 1 30); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && exit 0
    sleep 0.5
  done
  echo "dockerd did not pick up the runsc runtime" >&2
  exit 1
fi

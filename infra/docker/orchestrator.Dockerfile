# The orchestrator: consumes sandbox commands and drives the host's Docker engine.
# Built by infra/docker/build-images.sh (`make images`) with a build context holding the host-built
# wheelhouse, per-service requirements and the uv binary: nothing is fetched during the build.
# Needs the host's Docker socket at run time: mount /var/run/docker.sock and add the socket's
# group id to the process (compose: group_add: ["${DOCKER_GID}"]). See docs/deployment.md.
# The sandboxes' firewall needs the host's network namespace and CAP_NET_ADMIN, as root: compose
# and k8s run this image that way (docs/security.md, "Sandbox networks").
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_PYTHON_PREFERENCE=only-system UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
COPY uv /usr/local/bin/uv
COPY wheels /wheels
COPY requirements/orchestrator.txt /tmp/requirements.txt
RUN uv venv --python python3 /opt/sbx \
 && uv pip install --python /opt/sbx/bin/python --offline --no-index --find-links /wheels \
      -r /tmp/requirements.txt sbx-common sbx-orchestrator

FROM ${BASE_IMAGE}
# iptables: the sandboxes' firewall (engine/firewall.py), the one package fetched (Debian's apt).
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sbx
COPY --from=build /opt/sbx /opt/sbx
# The in-sandbox agent, put into every sandbox through a named volume (docs/agent.md).
COPY sbx-agent /opt/sbx-agent/sbx-agent
ENV PATH=/opt/sbx/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    SBX_METRICS_HOST=0.0.0.0 SBX_METRICS_PORT=9101 SBX_AGENT_BINARY=/opt/sbx-agent/sbx-agent
USER 10001:10001
EXPOSE 9101
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9101/health/live', timeout=2)"]
ENTRYPOINT ["sbx-orchestrator"]

# The webhooks service: delivers sandbox events to the users' webhooks (no Docker access).
# Built by infra/docker/build-images.sh (`make images`) with a build context holding the host-built
# wheelhouse, per-service requirements and the uv binary: nothing is fetched during the build.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_PYTHON_PREFERENCE=only-system UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
COPY uv /usr/local/bin/uv
COPY wheels /wheels
COPY requirements/webhooks.txt /tmp/requirements.txt
RUN uv venv --python python3 /opt/sbx \
 && uv pip install --python /opt/sbx/bin/python --offline --no-index --find-links /wheels \
      -r /tmp/requirements.txt sbx-common sbx-webhooks

FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sbx
COPY --from=build /opt/sbx /opt/sbx
ENV PATH=/opt/sbx/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    SBX_METRICS_HOST=0.0.0.0 SBX_METRICS_PORT=9105
USER 10001:10001
EXPOSE 9105
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9105/health/live', timeout=2)"]
ENTRYPOINT ["sbx-webhooks"]

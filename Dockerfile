# syntax=docker/dockerfile:1
# saas-quota-exporter container image.
#
#   docker build -t saas-quota-exporter .
#   docker run --rm --read-only -p 9877:9877 \
#     -v "$PWD/config.yml:/etc/saas-quota-exporter/config.yml:ro" saas-quota-exporter
#
# BASE_IMAGE is any Debian-like image with `python` (3.11 or newer) and the venv
# module; both stages use it, so the virtualenv's interpreter links stay valid.
ARG BASE_IMAGE=python:3.12-slim

# --- build: install the exporter and its dependencies into a self-contained venv ---
FROM ${BASE_IMAGE} AS build
# Lets a builder find (and prune) this stage's leftover images.
LABEL io.saas-quota-exporter.stage="build"

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter

# The system CA bundle, when the base has one (or the build mounts one), is what pip
# trusts: behind a TLS-inspecting proxy that is the only bundle that works.
SHELL ["/bin/sh", "-eu", "-c"]
# pip itself is removed afterwards: nothing installs at run time. The bytecode is
# compiled here, checked by hash only never by mtime, as the root filesystem is
# read-only at run time.
RUN if [ -f /etc/ssl/certs/ca-certificates.crt ]; then \
        export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; \
    fi; \
    python -m venv /opt/saas-quota-exporter; \
    /opt/saas-quota-exporter/bin/pip install --no-cache-dir --no-compile /src; \
    /opt/saas-quota-exporter/bin/pip uninstall --yes pip setuptools wheel >/dev/null 2>&1 || true; \
    /opt/saas-quota-exporter/bin/python -m compileall -q --invalidation-mode unchecked-hash \
        /opt/saas-quota-exporter/lib; \
    /opt/saas-quota-exporter/bin/saas-quota-exporter --version

# --- runtime ---
FROM ${BASE_IMAGE}

ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG BASE_IMAGE

LABEL org.opencontainers.image.title="saas-quota-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the quotas of paid SaaS APIs (Pictory, Tornado API, Piloterr, VidNavigator, VertaaUX)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it. Written
# directly rather than with useradd, which minimal bases lack.
SHELL ["/bin/sh", "-eu", "-c"]
RUN echo "exporter:x:10001:10001:saas-quota-exporter:/nonexistent:/usr/sbin/nologin" >> /etc/passwd; \
    echo "exporter:x:10001:" >> /etc/group; \
    mkdir -p /etc/saas-quota-exporter

COPY --from=build /opt/saas-quota-exporter /opt/saas-quota-exporter

ENV PATH=/opt/saas-quota-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:9877/-/healthy

USER 10001:10001
EXPOSE 9877

# No curl in slim bases: the venv's own Python asks /-/healthy. Set HEALTHCHECK_URL
# when --web.listen-address moves the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["saas-quota-exporter"]
CMD ["--config.file=/etc/saas-quota-exporter/config.yml"]

# The MLflow tracking server and model registry: the `mlflow` dependency group only (the
# project's own code is not needed to serve MLflow). Build context: the repository root.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# Pass-through for a package index mirror; unset means PyPI.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pip >= 25.1 reads [dependency-groups] (`--group`).
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade "pip>=25.1"
COPY pyproject.toml ./
# The runtime needs neither pip nor the test suites that wheels ship.
RUN /opt/venv/bin/pip install --group mlflow && /opt/venv/bin/pip uninstall --yes pip \
    && find /opt/venv -type d -name tests -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
RUN groupadd --gid 10001 gender \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin gender
COPY --from=builder /opt/venv /opt/venv
# Read-only root filesystem: no bytecode writes, a home under the /tmp emptyDir.
# MLflow's job runner (GenAI scorers, 8 extra processes, ~0.5 GB) is unused here: off.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
WORKDIR /app
USER 10001:10001
EXPOSE 5000
# State lives on the volume at /mlflow (SQLite + artifacts).
# Two workers (~240 MB each) fit the Deployment's memory limit with room to spare.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2", \
     "--backend-store-uri", "sqlite:////mlflow/mlflow.db", \
     "--serve-artifacts", "--artifacts-destination", "/mlflow/artifacts", \
     "--allowed-hosts", "mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*"]

# Last, so that a new revision only rewrites the image's metadata.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="gender-mlflow" \
      org.opencontainers.image.description="MLflow tracking server and model registry for the gender classifier" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"

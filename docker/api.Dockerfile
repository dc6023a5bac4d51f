# The prediction API: gunicorn + Flask with the `serve` dependency group only (no pandas,
# no MLflow, no training libraries). Build context: the repository root.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# Pass-through for a package index mirror; unset means PyPI.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pip >= 25.1 reads [dependency-groups] (`--group`).
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade "pip>=25.1"
# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN /opt/venv/bin/pip install --group serve
COPY model ./model
COPY service ./service
COPY jobs ./jobs
# The runtime needs neither pip nor the test suites that wheels ship (pandas' alone is 46 MB).
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip uninstall --yes pip \
    && find /opt/venv -type d -name tests -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
RUN groupadd --gid 10001 gender \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin gender
COPY --from=builder /opt/venv /opt/venv
# Read-only root filesystem: no bytecode writes, a home under the /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    GENDER_MODEL_DIR=/models GENDER_BIND=0.0.0.0:5000
WORKDIR /app
USER 10001:10001
EXPOSE 5000
CMD ["gunicorn", "--config", "python:service.gunicorn_conf", "service.app:create_app()"]

# Last, so that a new revision only rewrites the image's metadata.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="gender-api" \
      org.opencontainers.image.description="Gender classifier prediction API (POST /predict_gender)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"

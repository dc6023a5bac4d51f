"""Prometheus metrics, correct across gunicorn workers.

gunicorn_conf's ``on_starting`` hook points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before
any worker imports this module; each worker then writes its samples to memory-mapped files there and
``/metrics`` sums them.
Without that variable (a single process, e.g. a Flask test client) the default registry is used.
"""

import functools
import os
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

PREFIX = "gender_api"
# Sub-millisecond buckets: a single prediction is short CPU-bound work.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(f"{PREFIX}_requests", "HTTP requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    f"{PREFIX}_request_duration_seconds", "Request latency by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS
)
PREDICTIONS = Counter(f"{PREFIX}_predictions", "Predictions served by predicted class", ["gender"])
# 1 for each version some live worker serves; a dead worker's samples go with it (see child_exit).
MODEL_INFO = Gauge(f"{PREFIX}_model_info", "Model version in use", ["version"], multiprocess_mode="livemax")
MODEL_LOADS = Counter(
    f"{PREFIX}_model_loads", "Model versions loaded or refused (counted once per worker)", ["outcome"]
)


# Label lookups cost more than the increments; endpoints, statuses and classes are few, so the
# labelled children are cached.
@functools.cache
def _request_samples(endpoint: str, status: int) -> tuple:
    return REQUESTS.labels(endpoint, str(status)), LATENCY.labels(endpoint)


@functools.cache
def _predictions_of(gender: str) -> Counter:
    return PREDICTIONS.labels(gender)


def observe(endpoint: str, status: int, seconds: float) -> None:
    count, latency = _request_samples(endpoint, status)
    count.inc()
    latency.observe(seconds)


def count_predictions(counts: Mapping[str, int]) -> None:
    """Predictions served, by class: {"female": 3, "male": 1}."""
    for gender, count in counts.items():
        _predictions_of(gender).inc(count)


def exposition() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST

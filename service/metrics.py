"""Prometheus metrics, correct across gunicorn workers.

gunicorn_conf's ``on_starting`` hook points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before
any worker imports this module; each worker then writes its samples to memory-mapped files there and
``/metrics`` sums them.
Without that variable (a single process, e.g. a Flask test client) the default registry is used.
"""

import functools
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping

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

from model import drift
from model.pipeline import Prediction

PREFIX = "gender_api"
# How often each worker adds the users it scored (classes, drift bins) to the shared counters.
SCORED_FLUSH_INTERVAL_S = 1.0
# Sub-millisecond buckets: a single prediction is short CPU-bound work.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(f"{PREFIX}_requests", "HTTP requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    f"{PREFIX}_request_duration_seconds", "Request latency by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS
)
PREDICTIONS = Counter(f"{PREFIX}_predictions", "Predictions served by predicted class", ["gender"])
# 1 for each version some live worker serves; a dead worker's samples go with it (see child_exit).
MODEL_INFO = Gauge(f"{PREFIX}_model_info", "Model version in use", ["version"], multiprocess_mode="livemax")
# refused: corrupt, of another format, or failing to load; untrusted: unsigned or not signed by a
# trusted key (model.signing), which an alert treats as an attack.
MODEL_LOAD_OUTCOMES = ("loaded", "refused", "untrusted")
MODEL_LOADS = Counter(
    f"{PREFIX}_model_loads",
    "Model versions loaded, refused or untrusted (counted once per worker)",
    ["outcome"],
)
# Drift: live counts per input bin beside the serving model's training shares, from which a
# recording rule computes the population stability index over any window, summed over workers and
# pods. Only bins (model.drift), never a name.
INPUTS = Counter(f"{PREFIX}_input", "Users scored, by input feature and bin", ["feature", "bin"])
# Every worker sets the same shares from the same model.json: the most recent write of a live one
# is the serving model's.
INPUT_REFERENCE = Gauge(
    f"{PREFIX}_input_reference_share",
    "Share of the serving model's training users in each input bin",
    ["feature", "bin"],
    multiprocess_mode="livemostrecent",
)
REFERENCE_FEMALE = Gauge(
    f"{PREFIX}_reference_female_share",
    "Share of the serving model's training users it predicts female",
    multiprocess_mode="livemostrecent",
)


# Label lookups cost more than the increments; endpoints, statuses and classes are few, so the
# labelled children are cached.
@functools.cache
def _request_samples(endpoint: str, status: int) -> tuple:
    return REQUESTS.labels(endpoint, str(status)), LATENCY.labels(endpoint)


def observe(endpoint: str, status: int, seconds: float) -> None:
    count, latency = _request_samples(endpoint, status)
    count.inc()
    latency.observe(seconds)


@functools.cache
def input_counters() -> tuple[dict[str, Counter], ...]:
    """Per feature (in model.drift order), its bins' counters; created together, so that every bin
    is exported, at 0 until a user falls in it."""
    return tuple(
        {value: INPUTS.labels(feature, value) for value in values}
        for feature, values in drift.FEATURES.items()
    )


def initialize() -> None:
    """Export every drift bin and every model-load outcome from the start, at 0: a rate or an
    increase over them then means "none yet", not "no data"."""
    input_counters()
    for outcome in MODEL_LOAD_OUTCOMES:
        MODEL_LOADS.labels(outcome)


class ScoredTally:
    """The users a worker scores, by predicted class and drift bins, tallied in its memory and
    added to the shared counters by flush(). A request then adds one entry for each user instead
    of writing a counter for its class and one per feature: the memory-mapped counters cost far
    more per write than the dictionary does, and flush() writes each class and bin once whatever
    the traffic."""

    def __init__(self) -> None:
        self._pending: Tally = Tally()  # (gender, bins) -> users
        self._lock = threading.Lock()  # the request thread adds while the flusher takes

    def add(self, predictions: Iterable[Prediction]) -> None:
        with self._lock:
            self._pending.update((p.gender, p.bins) for p in predictions)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, Tally()
        genders: Tally = Tally()
        bins: Tally = Tally()
        for (gender, values), count in pending.items():
            genders[gender] += count
            for feature, value in enumerate(values):
                bins[feature, value] += count
        for gender, count in genders.items():
            PREDICTIONS.labels(gender).inc(count)
        samples = input_counters()
        for (feature, value), count in bins.items():
            samples[feature][value].inc(count)

    def start_flushing(self, interval_s: float = SCORED_FLUSH_INTERVAL_S) -> threading.Thread:
        """Flush every `interval_s` seconds in a daemon thread of this (worker) process."""

        def flush_forever() -> None:
            while True:
                time.sleep(interval_s)
                self.flush()

        thread = threading.Thread(target=flush_forever, name="scored-tally", daemon=True)
        thread.start()
        return thread


# This worker's tally: requests add to it, /metrics, the flusher thread and the worker's exit
# flush it.
scored = ScoredTally()


def set_reference(reference: Mapping | None) -> None:
    """Export the serving model's drift reference (model.json's drift_reference); a model trained
    before drift references were recorded exports none."""
    if reference is None:
        return
    for feature, values in drift.FEATURES.items():
        recorded = reference["features"].get(feature, {})
        for value in values:
            INPUT_REFERENCE.labels(feature, value).set(recorded.get(value, 0.0))
    REFERENCE_FEMALE.set(reference["female_share"])


def exposition() -> tuple[bytes, str]:
    scored.flush()  # this worker's latest; the others' are at most a flush interval old
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST

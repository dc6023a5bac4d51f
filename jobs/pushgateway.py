"""The jobs' own metrics, pushed to a Prometheus Pushgateway when GENDER_PUSHGATEWAY_URL is set.

A Job's pod is gone before Prometheus could scrape it, so each run pushes its outcome under its
own grouping key (job="gender-retrain", job="gender-batch-predict"). A success replaces the
group's values; a failure adds only its time, so the last success stays visible beside it. The
metrics are a report, not the work: a Pushgateway that does not answer is a warning, never a
failed job.
"""

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

PREFIX = "gender_job"
PUSH_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)

# name -> (help, label names); what a run may report besides its times.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rows": ("Users the last successful run trained on or scored", ()),
    "gate_promoted": ("1 if the last retrain's candidate was promoted, 0 if the gate refused it", ()),
    "gate_refusals_in_a_row": ("Retrains the gate has refused since the last promotion", ()),
    "grouped_accuracy": ("Grouped-by-first-name accuracy of the last retrain's candidate", ()),
    "predictions": ("Users the last batch run scored, by predicted class", ("gender",)),
    "female_share": ("Share of the last batch run's users predicted female", ()),
    "reference_female_share": ("Share of the model's training users it predicts female", ()),
    "input_psi": ("Population stability index of the last batch's users against the model's", ("feature",)),
}


class Report:
    """What a run reports: set() values during the run; pushed when it ends."""

    def __init__(self) -> None:
        self.values: dict[str, float | Mapping[str, float]] = {}

    def set(self, name: str, value: float | Mapping[str, float]) -> None:
        """A plain value, or {label value: value} for a metric with one label."""
        if name not in METRICS:
            raise KeyError(f"{name} is not one of the jobs' metrics")
        self.values[name] = value


def _timing(registry: CollectorRegistry, name: str, description: str, value: float) -> None:
    Gauge(f"{PREFIX}_{name}", description, registry=registry).set(value)


def _registry(report: Report, now: float, duration_s: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    _timing(registry, "last_success_timestamp_seconds", "End of the last successful run", now)
    _timing(registry, "duration_seconds", "Duration of the last successful run", duration_s)
    for name, value in report.values.items():
        description, labels = METRICS[name]
        gauge = Gauge(f"{PREFIX}_{name}", description, labels, registry=registry)
        if labels:
            for label, labelled in value.items():
                gauge.labels(label).set(labelled)
        else:
            gauge.set(value)
    return registry


def _failure_registry(now: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    _timing(registry, "last_failure_timestamp_seconds", "End of the last failed run", now)
    return registry


def _push(url: str, job: str, registry: CollectorRegistry) -> None:
    try:
        pushadd_to_gateway(url, job=job, registry=registry, timeout=PUSH_TIMEOUT_S)
    except OSError as error:  # refused, unresolvable, timed out, or an HTTP error status
        log.warning("metrics not pushed to %s: %s", url, error)


@contextmanager
def reporting(url: str | None, job: str) -> Iterator[Report]:
    """Collect a run's metrics and push them when it ends: all of them on success, the failure's
    time on an exception (re-raised). Without a URL nothing is pushed."""
    report = Report()
    started = time.monotonic()
    try:
        yield report
    except BaseException:
        if url:
            _push(url, job, _failure_registry(time.time()))
        raise
    if url:
        _push(url, job, _registry(report, time.time(), time.monotonic() - started))

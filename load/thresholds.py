"""The load gate: limits read from load/thresholds.toml, checked against a run's totals.

Kept free of Locust so that it is importable (and testable) without gevent's monkey-patching.
"""

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_PATH = Path(__file__).with_name("thresholds.toml")


@dataclass(frozen=True)
class Thresholds:
    max_failure_ratio: float
    max_p95_ms: float
    max_p99_ms: float
    min_rps: float

    @classmethod
    def read(cls, path: Path | str = DEFAULT_PATH) -> "Thresholds":
        """Every limit must be present and none unknown: a typo must not silently disable a limit."""
        values = tomllib.loads(Path(path).read_text())
        expected = {field.name for field in fields(cls)}
        if set(values) != expected:
            raise ValueError(f"{path}: expected the keys {sorted(expected)}, found {sorted(values)}")
        return cls(**{name: float(value) for name, value in values.items()})


@dataclass(frozen=True)
class RunTotals:
    requests: int
    failure_ratio: float
    p95_ms: float
    p99_ms: float
    rps: float


def breaches(limits: Thresholds, totals: RunTotals) -> list[str]:
    """One message per broken limit; empty when the run passes."""
    checks = [
        (
            totals.failure_ratio > limits.max_failure_ratio,
            f"failure ratio {totals.failure_ratio:.2%} > {limits.max_failure_ratio:.2%}",
        ),
        (totals.p95_ms > limits.max_p95_ms, f"p95 {totals.p95_ms:.0f} ms > {limits.max_p95_ms:.0f} ms"),
        (totals.p99_ms > limits.max_p99_ms, f"p99 {totals.p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms"),
        (totals.rps < limits.min_rps, f"throughput {totals.rps:.1f} req/s < {limits.min_rps:.1f} req/s"),
    ]
    return [message for broken, message in checks if broken]

"""`make load`, the load gate people run, from tests: bounded runs against 127.0.0.1 only."""

import csv
import subprocess
from pathlib import Path

from tests.fixtures.data import CHECKOUT_DIR

# -o venv: `make test` has made the venv already; a test must not reinstall it.
MAKE_LOAD = ["make", "--no-print-directory", "-o", "venv", "load"]
RUN_TIMEOUT_S = 120


def run_load(host: str, report_dir: Path, *, users: int, duration: str, **variables: str):
    """`make load` against `host`; `variables` are more make variables (THRESHOLDS, LOAD_ARGS, ...)."""
    arguments = [f"HOST={host}", f"USERS={users}", f"DURATION={duration}", f"LOAD_REPORT_DIR={report_dir}"]
    arguments += [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        [*MAKE_LOAD, *arguments], cwd=CHECKOUT_DIR, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def stats_by_name(report_dir: Path) -> dict[str, dict[str, str]]:
    """Locust's stats CSV of a run, by request name ("Aggregated": all of them)."""
    with open(report_dir / "locust_stats.csv", newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}

"""What the benchmarks measure of a child process: wall time and its own peak memory."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from tests.fixtures.data import CHECKOUT_DIR


class Measured(NamedTuple):
    seconds: float
    peak_mb: float  # the child's own peak resident set, not the largest of all children so far


def run(args: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `python args...` from the checkout; fails on a non-zero exit."""
    environment = None if env is None else {**os.environ, **env}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, *args], cwd=CHECKOUT_DIR, stdout=subprocess.DEVNULL, env=environment
    )
    # wait4 gives this child's resource usage alone (getrusage(RUSAGE_CHILDREN) keeps the maximum of
    # every child so far).
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return Measured(seconds, usage.ru_maxrss / 1024)


def retrain(data_dir: Path, model_dir: Path) -> Measured:
    """The retrain job end to end, untracked: what the CronJob runs."""
    return run(
        ["-m", "jobs.retrain"],
        {"GENDER_DATA_DIR": str(data_dir), "GENDER_MODEL_DIR": str(model_dir), "MLFLOW_TRACKING_URI": ""},
    )


def report(rows: list[tuple[str, float, str, bool | None]]) -> int:
    """Print (measure, value, target, met) rows as a table, met None for a row without a target;
    0 when every target is met, else 1."""
    print(f"{'measure':<44}{'value':>12}  {'target':<10} ok")
    for name, value, target, met in rows:
        print(f"{name:<44}{value:>12,.1f}  {target:<10} {'-' if met is None else 'yes' if met else 'NO'}")
    return 0 if all(met is not False for *_, met in rows) else 1

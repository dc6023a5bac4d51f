"""make bench-train: training end to end on the real data, and batch scoring of 1,000,000 users.

Targets (2 cores): training with all candidates and both protocols under 60 s; model.predict
at least 50,000 rows/s with peak memory under 2 GB. Prints what it measured; exits 1 on a miss.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.data import CHECKOUT_DIR, REAL_DATA_DIR

SCORED_USERS = 1_000_000
TRAIN_BUDGET_S = 60.0
PREDICT_MIN_ROWS_PER_S = 50_000
PREDICT_MAX_RSS_MB = 2048


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of a child process."""
    started = time.perf_counter()
    environment = None if env is None else {**os.environ, **env}
    subprocess.run(
        [sys.executable, *args], check=True, cwd=CHECKOUT_DIR, stdout=subprocess.DEVNULL, env=environment
    )
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    if not (REAL_DATA_DIR / "users.csv").exists():
        print(f"error: the real dataset is not at {REAL_DATA_DIR}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # The retrain job end to end, untracked: what the CronJob runs.
        train_s, _ = timed(
            ["-m", "jobs.retrain"],
            {
                "GENDER_DATA_DIR": str(REAL_DATA_DIR),
                "GENDER_MODEL_DIR": str(work / "models"),
                "MLFLOW_TRACKING_URI": "",
            },
        )
        timed(
            [
                "-m",
                "model.sample_data",
                "--out",
                str(work / "big"),
                "--users",
                str(SCORED_USERS),
                "--users-only",
            ]
        )
        # RUSAGE_CHILDREN keeps the largest child so far: the generator is measured first and is smaller.
        predict_s, predict_mb = timed(
            [
                "-m",
                "model.predict",
                "--model-dir",
                str(work / "models"),
                "--input",
                str(work / "big" / "users.csv"),
                "--output",
                str(work / "predictions.csv"),
            ]
        )
    rows_per_s = SCORED_USERS / predict_s
    results = [
        ("train on real users+hotels (s)", train_s, f"< {TRAIN_BUDGET_S:.0f}", train_s < TRAIN_BUDGET_S),
        (
            "predict 1M users (rows/s)",
            rows_per_s,
            f">= {PREDICT_MIN_ROWS_PER_S}",
            rows_per_s >= PREDICT_MIN_ROWS_PER_S,
        ),
        ("predict peak memory (MB)", predict_mb, f"< {PREDICT_MAX_RSS_MB}", predict_mb < PREDICT_MAX_RSS_MB),
    ]
    print(f"{'measure':<34}{'value':>12}  {'target':<10} ok")
    for name, value, target, ok in results:
        print(f"{name:<34}{value:>12,.1f}  {target:<10} {'yes' if ok else 'NO'}")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())

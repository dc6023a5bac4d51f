"""make bench-batch: batch scoring of 1,000,000 generated users with model.predict, end to end.

Targets (2 cores): at least 300,000 rows/s, process start, reading the users and writing the
predictions included, with peak memory under 1 GB. The model is trained on generated users first
(untracked), so the benchmark needs no real data. Prints what it measured; exits 1 on a miss.
"""

import sys
import tempfile
from pathlib import Path

from tests.bench.measure import report, retrain, run

SCORED_USERS = 1_000_000
TRAINING_USERS = 2_000
MIN_ROWS_PER_S = 300_000
MAX_PEAK_MB = 1024


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        run(["-m", "model.sample_data", "--out", str(work / "train"), "--users", str(TRAINING_USERS)])
        retrain(work / "train", work / "models")
        big = work / "big"
        run(["-m", "model.sample_data", "--out", str(big), "--users", str(SCORED_USERS), "--users-only"])
        scored = run(
            [
                "-m",
                "model.predict",
                "--model-dir",
                str(work / "models"),
                "--input",
                str(big / "users.csv"),
                "--output",
                str(work / "predictions.csv"),
            ]
        )
    rows_per_s = SCORED_USERS / scored.seconds
    return report(
        [
            (
                "model.predict, 1M users (rows/s)",
                rows_per_s,
                f">= {MIN_ROWS_PER_S:,}",
                rows_per_s >= MIN_ROWS_PER_S,
            ),
            (
                "model.predict peak memory (MB)",
                scored.peak_mb,
                f"< {MAX_PEAK_MB}",
                scored.peak_mb < MAX_PEAK_MB,
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

"""make bench-train: the retrain job end to end (all candidates, both protocols, untracked) on the
real data and on 20,000 and 100,000 generated users, so that the growth with the user base shows.

Targets (2 cores): the real data under 60 s; 100,000 users under 120 s with peak memory under 4 GB.
Prints what it measured; exits 1 on a miss.
"""

import sys
import tempfile
from pathlib import Path

from tests.bench.measure import report, retrain, run
from tests.fixtures.data import REAL_DATA_DIR

GENERATED_USERS = (20_000, 100_000)
REAL_BUDGET_S = 60.0
LARGEST_BUDGET_S = 120.0
LARGEST_MAX_PEAK_MB = 4096


def main() -> int:
    if not (REAL_DATA_DIR / "users.csv").exists():
        print(f"error: the real dataset is not at {REAL_DATA_DIR}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        real = retrain(REAL_DATA_DIR, work / "real")
        rows.append(
            (
                "train, real users + hotels (s)",
                real.seconds,
                f"< {REAL_BUDGET_S:.0f}",
                real.seconds < REAL_BUDGET_S,
            )
        )
        for users in GENERATED_USERS:
            data = work / f"users-{users}"
            run(["-m", "model.sample_data", "--out", str(data), "--users", str(users)])
            trained = retrain(data, work / f"models-{users}")
            largest = users == max(GENERATED_USERS)
            rows += [
                (
                    f"train, {users:,} generated users (s)",
                    trained.seconds,
                    f"< {LARGEST_BUDGET_S:.0f}" if largest else "",
                    trained.seconds < LARGEST_BUDGET_S if largest else None,
                ),
                (
                    f"train, {users:,} generated users (peak MB)",
                    trained.peak_mb,
                    f"< {LARGEST_MAX_PEAK_MB}" if largest else "",
                    trained.peak_mb < LARGEST_MAX_PEAK_MB if largest else None,
                ),
            ]
    return report(rows)


if __name__ == "__main__":
    sys.exit(main())

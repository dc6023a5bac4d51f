"""make bench-batch: batch scoring of 1,000,000 generated users with model.predict, end to end, and of
5,000,000 with the Spark engine at local[1] and local[2].

Targets (2 cores): at least 300,000 rows/s, process start, reading the users and writing the
predictions included, with peak memory under 1 GB. The model is trained on generated users first,
so the benchmark needs no real data. Each measure of model.predict is the best of RUNS runs (the
machine's other load only ever slows a run); the peak memory is the largest of them. The Spark
engine (jobs.batch_predict --engine spark, one run per master) scores a Parquet table with the
champion of a local MLflow server, job start and the registry included; it has no target: the two
masters show how it scales with cores. Prints what it measured; exits 1 on a miss.
"""

import sys
import tempfile
from pathlib import Path

import pandas as pd

from tests.bench.measure import Measured, report, retrain, run
from tests.fixtures.tracking import start_tracking_server

SCORED_USERS = 1_000_000
TRAINING_USERS = 2_000
MIN_ROWS_PER_S = 300_000
MAX_PEAK_MB = 1024
RUNS = 3
SPARK_USERS = 5_000_000
SPARK_MASTERS = ("local[1]", "local[2]")


def score(model_dir: Path, users: Path, output: Path) -> Measured:
    """The best time and the largest peak memory of RUNS runs of model.predict."""
    args = [
        "-m",
        "model.predict",
        "--model-dir",
        str(model_dir),
        "--input",
        str(users),
        "--output",
        str(output),
    ]
    runs = [run(args) for _ in range(RUNS)]
    return Measured(min(r.seconds for r in runs), max(r.peak_mb for r in runs))


def spark_rows_per_s(work: Path, train: Path) -> dict[str, float]:
    """Rows/s of the Spark engine per master, scoring a Parquet table of SPARK_USERS users with the
    champion of a tracked retrain on `train`."""
    table = work / "spark-users"
    run(["-m", "model.sample_data", "--out", str(table), "--users", str(SPARK_USERS), "--users-only"])
    pd.read_csv(table / "users.csv").to_parquet(table / "users.parquet", index=False)
    (work / "mlflow").mkdir()
    server = start_tracking_server(work / "mlflow")
    try:
        tracked = {"MLFLOW_TRACKING_URI": server.url, "GENDER_MODEL_DIR": str(work / "spark-models")}
        run(["-m", "jobs.retrain"], {"GENDER_DATA_DIR": str(train), **tracked})
        args = ["-m", "jobs.batch_predict", "--engine", "spark", "--input", str(table / "users.parquet")]
        return {
            master: SPARK_USERS
            / run(
                args, {**tracked, "GENDER_SPARK_MASTER": master, "GENDER_OUTPUT_DIR": str(work / master)}
            ).seconds
            for master in SPARK_MASTERS
        }
    finally:
        server.stop()


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        run(["-m", "model.sample_data", "--out", str(work / "train"), "--users", str(TRAINING_USERS)])
        retrain(work / "train", work / "models")
        big = work / "big"
        run(["-m", "model.sample_data", "--out", str(big), "--users", str(SCORED_USERS), "--users-only"])
        pd.read_csv(big / "users.csv").to_parquet(big / "users.parquet", index=False)
        csv = score(work / "models", big / "users.csv", work / "predictions.csv")
        parquet = score(work / "models", big / "users.parquet", work / "predictions.parquet")
        spark = spark_rows_per_s(work, work / "train")
    rows = []
    for label, measured, target in (("CSV", csv, True), ("Parquet", parquet, False)):
        rows_per_s = SCORED_USERS / measured.seconds
        met_speed = rows_per_s >= MIN_ROWS_PER_S if target else None
        met_memory = measured.peak_mb < MAX_PEAK_MB if target else None
        rows += [
            (
                f"model.predict {label}, 1M users (rows/s)",
                rows_per_s,
                f">= {MIN_ROWS_PER_S:,}" if target else "",
                met_speed,
            ),
            (
                f"model.predict {label} peak memory (MB)",
                measured.peak_mb,
                f"< {MAX_PEAK_MB}" if target else "",
                met_memory,
            ),
        ]
    for master, rows_per_s in spark.items():
        rows.append((f"Spark engine {master}, 5M users (rows/s)", rows_per_s, "", None))
    return report(rows)


if __name__ == "__main__":
    sys.exit(main())

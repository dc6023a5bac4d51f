"""Batch inference: what the weekly CronJob runs.

The single-node engine (the default) scores the users whose gender is `none` (all users when the
file has no gender column, or any users table given with --input) with the model volume's current
model, and writes the predictions CSV atomically into the output directory. The Spark engine
(`--engine spark`, jobs.spark_batch) scores a users table with the registry's champion into a
Parquet directory. Either way the drift of those users against the model's training users is
written beside the predictions, and counts, class balance and drift are logged to MLflow and pushed
to the Pushgateway (jobs.pushgateway).
"""

import argparse
import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from jobs import entry, pushgateway, tracking
from jobs.settings import BatchSettings, SparkBatchSettings
from model import artifact, drift, signing
from model.data import load_dataset
from model.predict import score, write_atomically

ENGINES = ("single-node", "spark")
LATEST = "latest.csv"
PUSH_JOB = "gender-batch-predict"  # the Pushgateway's grouping key: the CronJob's name
log = logging.getLogger("jobs.batch_predict")


class Scoring(NamedTuple):
    """What an engine scored and wrote: the summary, drift and metrics are made from it."""

    model_version: str
    drift_reference: dict | None  # none in a model trained before drift
    input: Path
    output: Path
    rows: int
    female: int
    mean_probability: float
    bins: drift.BinCounts


def score_single_node(settings: BatchSettings, users_file: Path | None, stamp: str) -> Scoring:
    """The users in one process (model.predict), with the model of the model volume, into a CSV."""
    loaded = artifact.load(settings.model_dir, signing.read_trusted_keys(settings.trusted_keys_dir))
    paths = {"users": users_file, "hotels": None, "flights": None} if users_file else settings.input_paths()
    dataset = load_dataset(paths["users"], paths["hotels"], paths["flights"])
    if "gender" in dataset.users and not users_file:
        dataset = dataclasses.replace(dataset, users=dataset.users[dataset.users["gender"] == "none"])
    predictions, bins = score(dataset, loaded)
    out = settings.output_dir / f"predictions-{stamp}.csv"
    write_atomically(predictions, out)
    # latest.csv -> the newest predictions file, switched atomically like the model's `current`.
    artifact.replace_symlink(settings.output_dir / LATEST, out.name)
    rows = len(predictions)
    return Scoring(
        model_version=loaded.version,
        drift_reference=loaded.metadata.get("drift_reference"),
        input=paths["users"],
        output=out,
        rows=rows,
        female=int((predictions["predicted_gender"] == "female").sum()),
        mean_probability=float(predictions["probability"].mean()) if rows else 0.0,
        bins=bins,
    )


def summarize(scoring: Scoring, stamp: str) -> dict:
    """The summary every engine logs, and the drift file beside the predictions."""
    rows, reference = scoring.rows, scoring.drift_reference
    summary = {
        "event": "batch_predict",
        "model_version": scoring.model_version,
        "input": str(scoring.input),
        "output": str(scoring.output),
        "rows": rows,
        "female": scoring.female,
        "male": rows - scoring.female,
        "female_share": scoring.female / rows if rows else 0.0,
        "mean_probability": scoring.mean_probability,
        "reference_female_share": reference["female_share"] if reference else None,
        "drift": drift.drift(scoring.bins, reference) if reference and rows else None,
    }
    if summary["drift"]:
        drift_file = scoring.output.with_name(f"drift-{stamp}.json")
        drift_file.write_text(json.dumps(summary["drift"], indent=2, sort_keys=True))
        summary["drift_file"] = str(drift_file)
    return summary


def batch_predict(settings: BatchSettings, users_file: Path | None = None, engine: str = ENGINES[0]) -> dict:
    with pushgateway.reporting(settings.pushgateway_url, PUSH_JOB) as report:
        tracker = tracking.tracker(settings.tracking_wait_s)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if engine == "spark":
            from jobs import spark_batch  # PySpark is only in the spark group's environments

            scoring = spark_batch.score(settings, users_file, stamp)
        else:
            scoring = score_single_node(settings, users_file, stamp)
        summary = summarize(scoring, stamp)
        tracker.log_batch(summary, scoring.model_version)
        report.set("rows", summary["rows"])
        report.set("predictions", {"female": summary["female"], "male": summary["male"]})
        report.set("female_share", summary["female_share"])
        if summary["reference_female_share"] is not None:
            report.set("reference_female_share", summary["reference_female_share"])
        if summary["drift"]:
            report.set("input_psi", summary["drift"]["psi"])
    # The log line carries the PSI per feature; the shares are in the drift file.
    log.info("%s", json.dumps(summary | {"drift": summary["drift"] and summary["drift"]["psi"]}))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.batch_predict", description=__doc__)
    parser.add_argument(
        "--input",
        type=Path,
        help="score every user of this users table (.csv or .parquet) instead of the unlabelled ones "
        "of the data directory; required by the Spark engine",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=ENGINES[0],
        help="single-node: this process, the model volume's model, a CSV (default); spark: Spark, the "
        "registry's champion (models:/gender-classifier@champion), a Parquet directory",
    )
    args = parser.parse_args(argv)
    if args.engine == "spark" and args.input is None:
        parser.error("--engine spark scores the users table that --input names")
    settings_class = SparkBatchSettings if args.engine == "spark" else BatchSettings
    return entry.run(
        "jobs.batch_predict",
        settings_class,
        lambda settings: batch_predict(settings, args.input, args.engine),
    )


if __name__ == "__main__":
    sys.exit(main())

"""Batch inference: what the weekly CronJob runs.

Scores the users whose gender is `none` (all users when the file has no gender column, or
any users CSV given with --input) with the current model, writes the predictions CSV
atomically into the output directory with the drift of those users against the model's training
users beside it, logs counts, class balance and drift to MLflow, and pushes them to the
Pushgateway (jobs.pushgateway).
"""

import argparse
import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from jobs import entry, pushgateway, tracking
from jobs.settings import BatchSettings
from model import artifact, drift, signing
from model.data import load_dataset
from model.predict import score, write_atomically

LATEST = "latest.csv"
PUSH_JOB = "gender-batch-predict"  # the Pushgateway's grouping key: the CronJob's name
log = logging.getLogger("jobs.batch_predict")


def batch_predict(settings: BatchSettings, users_csv: Path | None = None) -> dict:
    with pushgateway.reporting(settings.pushgateway_url, PUSH_JOB) as report:
        tracker = tracking.tracker(settings.tracking_wait_s)
        loaded = artifact.load(settings.model_dir, signing.read_trusted_keys(settings.trusted_keys_dir))
        paths = {"users": users_csv, "hotels": None, "flights": None} if users_csv else settings.input_paths()
        dataset = load_dataset(paths["users"], paths["hotels"], paths["flights"])
        if "gender" in dataset.users and not users_csv:
            dataset = dataclasses.replace(dataset, users=dataset.users[dataset.users["gender"] == "none"])
        predictions, bins = score(dataset, loaded)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = settings.output_dir / f"predictions-{stamp}.csv"
        write_atomically(predictions, out)
        # latest.csv -> the newest predictions file, switched atomically like the model's `current`.
        artifact.replace_symlink(settings.output_dir / LATEST, out.name)
        counts = predictions["predicted_gender"].value_counts()
        rows = len(predictions)
        reference = loaded.metadata.get("drift_reference")  # none in a model trained before drift
        summary = {
            "event": "batch_predict",
            "model_version": loaded.version,
            "input": str(paths["users"]),
            "output": str(out),
            "rows": rows,
            "female": int(counts.get("female", 0)),
            "male": int(counts.get("male", 0)),
            "female_share": float(counts.get("female", 0) / rows) if rows else 0.0,
            "mean_probability": float(predictions["probability"].mean()) if rows else 0.0,
            "reference_female_share": reference["female_share"] if reference else None,
            "drift": drift.drift(bins, reference) if reference and rows else None,
        }
        if summary["drift"]:
            drift_file = out.with_name(f"drift-{stamp}.json")
            drift_file.write_text(json.dumps(summary["drift"], indent=2, sort_keys=True))
            summary["drift_file"] = str(drift_file)
        tracker.log_batch(summary, loaded.version)
        report.set("rows", rows)
        report.set("predictions", {"female": summary["female"], "male": summary["male"]})
        report.set("female_share", summary["female_share"])
        if reference:
            report.set("reference_female_share", reference["female_share"])
        if summary["drift"]:
            report.set("input_psi", summary["drift"]["psi"])
    # The log line carries the PSI per feature; the shares are in the drift file.
    log.info("%s", json.dumps(summary | {"drift": summary["drift"] and summary["drift"]["psi"]}))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.batch_predict", description=__doc__)
    parser.add_argument(
        "--input", type=Path, help="score every user of this users CSV instead of the unlabelled ones"
    )
    args = parser.parse_args(argv)
    return entry.run(
        "jobs.batch_predict", BatchSettings, lambda settings: batch_predict(settings, args.input)
    )


if __name__ == "__main__":
    sys.exit(main())

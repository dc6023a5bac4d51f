"""The drift report of the newest batch: the DAG gender_weekly's last step.

jobs.batch_predict writes predictions-<stamp>.csv, points latest.csv at it and writes the drift of
those users beside it as drift-<stamp>.json. This reads that drift file, the one of the batch that
latest.csv names, and logs one JSON line: the PSI per feature and the features above
model.drift.PSI_ALERT. It reports and exits OK either way: drift is for people to read (and for
the Prometheus alert on the pushed PSI), not a reason to fail the weekly run. Exit codes
(model.exit_codes): OK, BAD_INPUT when there is no batch to report on or its drift file is
unreadable, USAGE for bad settings.
"""

import json
import logging
import sys

from jobs import entry
from jobs.batch_predict import LATEST
from jobs.settings import BatchSettings
from model import drift
from model.data import DataError

log = logging.getLogger("jobs.drift_report")


def drift_report(settings: BatchSettings) -> dict:
    latest = settings.output_dir / LATEST
    if not latest.is_symlink():
        raise DataError(latest, "no batch has written predictions here yet: run jobs.batch_predict first")
    predictions = latest.readlink().name
    stamp = predictions.removeprefix("predictions-").removesuffix(".csv")
    drift_file = settings.output_dir / f"drift-{stamp}.json"
    record = {"event": "drift_report", "predictions": predictions, "drift_file": None}
    if not drift_file.exists():
        # A model trained before drift references existed, or a batch of no users: nothing to compare.
        log.warning(
            "%s has no drift file (%s): its model records no training reference", predictions, drift_file
        )
        log.info("%s", json.dumps(record))
        return record
    try:
        psi = json.loads(drift_file.read_text())["psi"]
        drifted = sorted(feature for feature, value in psi.items() if value > drift.PSI_ALERT)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataError(drift_file, "not a drift file of jobs.batch_predict (no PSI per feature)") from None
    record |= {
        "drift_file": str(drift_file),
        "psi": psi,
        "alert_threshold": drift.PSI_ALERT,
        "drifted": drifted,
    }
    log.info("%s", json.dumps(record))
    return record


def main() -> int:
    return entry.run("jobs.drift_report", BatchSettings, drift_report)


if __name__ == "__main__":
    sys.exit(main())

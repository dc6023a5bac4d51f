"""One logging setup for the jobs: timestamped lines on stdout, which kubectl logs and honcho collect."""

import logging
import sys


def configure(level: str) -> None:
    logging.basicConfig(
        stream=sys.stdout,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # MLflow and urllib3 are chatty at INFO about things the job already reports.
    for noisy in ("mlflow", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

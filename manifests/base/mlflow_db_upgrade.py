"""Bring MLflow's database to the schema of this image's MLflow before the server starts.

The init container of Deployment gender-mlflow runs this file (the mlflow image holds no project
code: kustomize ships it in the ConfigMap gender-mlflow-db-upgrade). A newer MLflow refuses to serve
an older schema, and `mlflow db upgrade` must not run twice at once on one database:

- PostgreSQL (the cloud overlay, two replicas): the upgrade runs while this process holds a
  session advisory lock, so a second pod waits for the first to finish and then finds nothing to
  do. PostgreSQL drops the lock with the session, so a pod that dies mid-upgrade blocks no other.
- SQLite (the base): one replica with the Recreate strategy, so one pod at a time opens the file.

The database URL is MLFLOW_BACKEND_STORE_URI, the variable `mlflow server` reads; the command runs
in this process, so the URL and its password never appear on a command line.
"""

import logging
import os
import sys

import sqlalchemy
from mlflow.cli import cli

# The advisory lock's key: any number no other client of the MLflow database locks.
LOCK_KEY = 4_317_001

log = logging.getLogger("mlflow_db_upgrade")


def run_upgrade(url: str) -> None:
    cli.main(["db", "upgrade", url], prog_name="mlflow", standalone_mode=False)


def upgrade_under_lock(url: str) -> None:
    """Upgrade while holding the advisory lock. Its connection autocommits, so that it never sits
    "idle in transaction" (a server may end such sessions, and the lock with them)."""
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    key = {"key": LOCK_KEY}
    try:
        with engine.connect() as lock:
            if not lock.scalar(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), key):
                log.info("another replica is upgrading the database schema: waiting for it")
                lock.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                run_upgrade(url)
            finally:
                lock.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    if not url:
        log.error("MLFLOW_BACKEND_STORE_URI is not set: no database to upgrade")
        return 2
    if sqlalchemy.engine.make_url(url).get_backend_name() == "postgresql":
        upgrade_under_lock(url)
    else:
        run_upgrade(url)
    log.info("the database schema is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())

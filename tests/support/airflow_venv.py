"""Run Airflow from its own venv (.tools/airflow, `make airflow-venv`) against the DAG in airflow/dags.

The tests stay in .venv; tests/support/airflow_runner.py runs in Airflow's, in a subprocess, and
answers in JSON.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.data import CHECKOUT_DIR

AIRFLOW_BIN = CHECKOUT_DIR / ".tools" / "airflow" / "bin"
DAGS = CHECKOUT_DIR / "airflow" / "dags"
RUNNER = CHECKOUT_DIR / "tests" / "support" / "airflow_runner.py"
RUN_TIMEOUT_S = 600
STEPS = ["retrain", "batch_predict", "drift_report"]
# The task states of a run whose retrain failed: the steps after it never run.
FAILED_AT_RETRAIN = {
    "retrain": "failed",
    "batch_predict": "upstream_failed",
    "drift_report": "upstream_failed",
}


def airflow_bin(name: str) -> str:
    """A program of the Airflow venv; a missing venv fails the test with the fix."""
    path = AIRFLOW_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make airflow-venv` (or `make tools`) to install Airflow")
    return str(path)


def airflow_env(home: Path, **extra: str) -> dict:
    """This environment with Airflow's home, the DAG folder and no examples; `extra` on top. The
    tracking URI of the test run is dropped: each DAG step gets the one its settings say."""
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return environment | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **extra,
    }


def run_dag(command: str, home: Path, **env: str) -> tuple[dict, str]:
    """(the runner's JSON answer, its whole output) for `describe` or `test`."""
    done = subprocess.run(
        [airflow_bin("python"), str(RUNNER), command],
        env=airflow_env(home, **env),
        cwd=CHECKOUT_DIR,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"airflow_runner.py {command} exited with {done.returncode}:\n{output}"
    return json.loads(done.stdout.strip().splitlines()[-1]), output


def migrate(home: Path) -> None:
    """A fresh Airflow metadata database (SQLite) in `home`."""
    done = subprocess.run(
        [airflow_bin("airflow"), "db", "migrate"],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr

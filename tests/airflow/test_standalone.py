"""`make airflow` (scripts/airflow.sh): Airflow standalone answers on loopback, tells how to log in,
and serves the DAG gender_weekly with no import error."""

import json
import os
import signal
import subprocess

import pytest
import requests

from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.service import free_port
from tests.support.airflow_venv import DAGS, airflow_bin
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 240


def test_make_airflow_serves_the_dag_and_says_how_to_log_in(tmp_path):
    airflow_bin("airflow")  # fails with the fix when the venv is missing
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_PORT": str(port),
        # The log servers' ports, free ones here so that a running `make airflow` is no obstacle.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    log = tmp_path / "standalone.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["scripts/airflow.sh"], cwd=CHECKOUT_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    passwords = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                code = process.returncode
                raise AssertionError(f"scripts/airflow.sh exited with {code}:\n{log.read_text()}")
            try:
                health = requests.get(f"{api}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return health["dag_processor"]["status"] == "healthy" and passwords.exists()

        wait_until(healthy, START_TIMEOUT_S, 1, lambda: f"no healthy Airflow on {api}:\n{log.read_text()}")
        printed = log.read_text()
        assert f"Airflow: {api}" in printed
        assert f"Log in as admin with the password Airflow writes to {passwords}" in printed

        password = json.loads(passwords.read_text())["admin"]
        token = requests.post(
            f"{api}/auth/token", json={"username": "admin", "password": password}, timeout=10
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def parsed() -> dict | None:
            answer = requests.get(f"{api}/api/v2/dags/gender_weekly", headers=headers, timeout=10)
            return answer.json() if answer.status_code == 200 else None

        dag = wait_until(parsed, START_TIMEOUT_S, 1, lambda: f"no gender_weekly:\n{log.read_text()}")
        assert dag["timetable_summary"] == json.loads((DAGS / "gender_schedule.json").read_text())["schedule"]
        errors = requests.get(f"{api}/api/v2/importErrors", headers=headers, timeout=10).json()
        assert errors["total_entries"] == 0, errors
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

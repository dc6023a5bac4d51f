"""The Airflow DAG gender_weekly (airflow/dags), loaded and run by the real Airflow of .tools/airflow.

It imports with no errors in both modes and has the three steps in order on the retrain CronJob's
schedule (test_cluster_mode.py runs the cluster mode). `dag.test()` in local mode runs the steps as
processes against a real MLflow server: the model promoted, the registry's champion moved, the
predictions and the drift report written. A refused
users.csv and a model directory locked by another writer fail the run with the job's message.
"""

import csv
import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from jobs import tracking
from model import artifact
from tests.fixtures.data import CHECKOUT_DIR
from tests.support.airflow_venv import DAGS, FAILED_AT_RETRAIN, STEPS, run_dag
from tests.support.manifests import find, rendered_objects

pytestmark = pytest.mark.slow
SCHEDULE_FILE = DAGS / "gender_schedule.json"
# The overlay the committed schedule was generated from (make airflow-schedule AIRFLOW_OVERLAY=...).
OVERLAY = json.loads(SCHEDULE_FILE.read_text())["overlay"]


def test_the_generated_schedule_is_current(tmp_path):
    fresh = tmp_path / "gender_schedule.json"
    done = subprocess.run(
        [sys.executable, "scripts/airflow_schedule.py", "--overlay", OVERLAY, "--out", str(fresh)],
        cwd=CHECKOUT_DIR,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert SCHEDULE_FILE.read_text() == fresh.read_text(), (
        "airflow/dags/gender_schedule.json is out of date: run `make airflow-schedule`"
    )


@pytest.mark.parametrize("mode", ["local", "cluster"])
def test_the_dag_runs_the_three_steps_in_order_on_the_retrain_schedule(tmp_path, mode):
    described, output = run_dag("describe", tmp_path, GENDER_AIRFLOW_MODE=mode)
    assert described["import_errors"] == {}, output
    dag = described["dag"]
    expected_type = "CronJobTemplateOperator" if mode == "cluster" else "_PythonDecoratedOperator"
    assert {task: spec["type"] for task, spec in dag["tasks"].items()} == dict.fromkeys(STEPS, expected_type)
    assert {task: spec["downstream"] for task, spec in dag["tasks"].items()} == {
        "retrain": ["batch_predict"],
        "batch_predict": ["drift_report"],
        "drift_report": [],
    }
    retrain = find(rendered_objects(OVERLAY), "CronJob", "gender-retrain")["spec"]
    assert dag["timetable"]["expression"] == retrain["schedule"]
    assert dag["timetable"]["timezone"] == retrain["timeZone"]
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1


def test_a_mode_it_does_not_know_is_an_import_error_naming_the_variable(tmp_path):
    described, _ = run_dag("describe", tmp_path, GENDER_AIRFLOW_MODE="kubernetes")
    [error] = described["import_errors"].values()
    assert "GENDER_AIRFLOW_MODE='kubernetes': Input should be 'local' or 'cluster'" in error
    assert described["dag"] is None


def stack_env(tmp_path, tracking_server, data_dir) -> dict:
    """The local stack's settings (scripts/stack.sh) under tmp_path, tracked by the test's server."""
    return {
        "STACK_DIR": str(tmp_path / "var"),
        "DATA_DIR": str(data_dir),
        "MLFLOW_PORT": tracking_server.url.rsplit(":", 1)[1],
        "PUSHGATEWAY_PORT": "9",  # nothing listens: the jobs warn and go on
    }


def test_a_local_run_promotes_moves_the_champion_and_writes_the_predictions(
    tmp_path, airflow_home, tracking_server, sample_data_dir
):
    result, output = run_dag("test", airflow_home, **stack_env(tmp_path, tracking_server, sample_data_dir))
    assert result["state"] == "success", output
    assert result["tasks"] == dict.fromkeys(STEPS, "success")
    gate = result["xcoms"]["retrain"]
    assert gate["decision"] == "promoted", gate
    served = artifact.current_version(tmp_path / "var" / "models")
    assert gate["served_version"] == served
    assert '"event": "gate", "decision": "promoted"' in output  # the task log shows the job's own line

    champion = MlflowClient(tracking_uri=tracking_server.url).get_model_version_by_alias(
        tracking.REGISTERED_MODEL, tracking.CHAMPION_ALIAS
    )
    assert champion.tags[tracking.VERSION_TAG] == served

    predictions = tmp_path / "var" / "predictions"
    with open(predictions / "latest.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows
    assert {row["model_version"] for row in rows} == {served}
    report = result["xcoms"]["drift_report"]
    assert report["predictions"] == (predictions / "latest.csv").readlink().name
    assert set(report["psi"]) == set(json.loads((predictions / report["drift_file"]).read_text())["psi"])


def test_a_refused_users_csv_fails_the_run_with_the_jobs_message(
    tmp_path, airflow_home, tracking_server, sample_data_dir
):
    bad = tmp_path / "bad-data"
    bad.mkdir()
    lines = (sample_data_dir / "users.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("age")] = "abc"
    (bad / "users.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")

    result, output = run_dag("test", airflow_home, **stack_env(tmp_path, tracking_server, bad))
    assert result["state"] == "failed", output
    assert result["tasks"] == FAILED_AT_RETRAIN
    assert "retrain exited with code 3" in output
    assert "users.csv, row 1 (line 2), column 'age': not an integer: 'abc'" in output
    assert artifact.current_version(tmp_path / "var" / "models") is None


def test_a_run_while_another_writer_holds_the_model_directory_fails_and_publishes_nothing(
    tmp_path, airflow_home, tracking_server, sample_data_dir
):
    models = tmp_path / "var" / "models"
    with artifact.writer_lock(models):
        result, output = run_dag(
            "test", airflow_home, **stack_env(tmp_path, tracking_server, sample_data_dir)
        )
    assert result["state"] == "failed", output
    assert result["tasks"]["retrain"] == "failed"
    assert "retrain exited with code 5" in output
    assert f"{models} is being written by another process" in output
    assert artifact.current_version(models) is None

"""jobs.drift_report, the DAG's last step: the drift of the batch latest.csv names, or a clear refusal."""

import json
import os

from model.exit_codes import ExitCode
from tests.fixtures.models import job_env, run_job


def test_with_no_batch_yet_it_refuses_naming_the_missing_link(tmp_path, sample_data_dir):
    done = run_job("jobs.drift_report", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.BAD_INPUT, done.stdout
    latest = tmp_path / "predictions" / "latest.csv"
    assert f"{latest}: no batch has written predictions here yet: run jobs.batch_predict first" in done.stdout
    assert "Traceback" not in done.stdout


def batch_of(tmp_path, drift: str | None) -> None:
    """latest.csv -> a predictions file, with that drift file text beside it (none when None)."""
    out = tmp_path / "predictions"
    out.mkdir()
    (out / "predictions-20260101T000000Z.csv").write_text("code,predicted_gender\n")
    os.symlink("predictions-20260101T000000Z.csv", out / "latest.csv")
    if drift is not None:
        (out / "drift-20260101T000000Z.json").write_text(drift)


def test_it_names_the_features_above_the_alert_threshold(tmp_path, sample_data_dir):
    batch_of(tmp_path, json.dumps({"users": 3, "psi": {"age": 0.35, "company": 0.05}, "features": {}}))
    done = run_job("jobs.drift_report", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.OK, done.stdout
    [line] = [line for line in done.stdout.splitlines() if '"event": "drift_report"' in line]
    record = json.loads(line[line.index("{") :])
    assert record["drifted"] == ["age"]
    assert record["psi"] == {"age": 0.35, "company": 0.05}
    assert record["predictions"] == "predictions-20260101T000000Z.csv"


def test_a_batch_without_drift_is_reported_not_failed(tmp_path, sample_data_dir):
    batch_of(tmp_path, None)
    done = run_job("jobs.drift_report", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.OK, done.stdout
    assert "predictions-20260101T000000Z.csv has no drift file" in done.stdout


def test_an_unreadable_drift_file_is_refused_by_name(tmp_path, sample_data_dir):
    batch_of(tmp_path, '{"psi": [1, 2]}')
    done = run_job("jobs.drift_report", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.BAD_INPUT
    drift_file = tmp_path / "predictions" / "drift-20260101T000000Z.json"
    assert f"{drift_file}: not a drift file of jobs.batch_predict (no PSI per feature)" in done.stdout

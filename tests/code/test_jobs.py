"""The retrain and batch jobs' own behaviour: the gate, the lock, an unreachable tracking server."""

import subprocess
import sys

import pytest

from jobs import retrain as retrain_job
from jobs import tracking
from jobs.gate import decide
from model import artifact
from model.exit_codes import ExitCode
from tests.fixtures.data import CHECKOUT_DIR


def metadata(accuracy: float) -> dict:
    return {"metrics": {"grouped": {"accuracy": accuracy}}}


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "reason"),
    [
        (0.95, None, True, "first model"),
        (0.85, None, False, "below the floor 0.9000"),
        (0.975, 0.98, True, "within tolerance"),
        (0.965, 0.98, False, "worse than the champion's 0.9800 by more than the tolerance 0.0100"),
        (0.99, 0.98, True, "within tolerance"),
        (0.89, 0.80, False, "below the floor"),
    ],
)
def test_gate(candidate, champion, promote, reason):
    decision = decide(
        metadata(candidate), metadata(champion) if champion else None, tolerance=0.01, floor=0.9
    )
    assert decision.promote is promote
    assert reason in decision.reason


def job_env(tmp_path, data_dir, **extra) -> dict:
    return {
        "PATH": "/usr/bin:/bin",
        "GENDER_MODEL_DIR": str(tmp_path / "models"),
        "GENDER_DATA_DIR": str(data_dir),
        "GENDER_OUTPUT_DIR": str(tmp_path / "predictions"),
        **extra,
    }


def run_job(module: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module], env=env, cwd=CHECKOUT_DIR, capture_output=True, text=True
    )


def test_retrain_without_tracking_publishes_and_batch_scores_the_unlabelled(tmp_path, sample_data_dir):
    env = job_env(tmp_path, sample_data_dir)
    done = run_job("jobs.retrain", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"decision": "promoted"' in done.stdout
    version = artifact.current_version(tmp_path / "models")
    done = run_job("jobs.batch_predict", env)
    assert done.returncode == 0, done.stdout + done.stderr
    latest = (tmp_path / "predictions" / "latest.csv").read_text().splitlines()
    n_unlabelled = sum(
        1 for line in (sample_data_dir / "users.csv").read_text().splitlines() if ",none," in line
    )
    assert len(latest) == 1 + n_unlabelled
    assert latest[1].endswith(version)


def test_without_a_tracking_uri_the_tracker_records_nothing(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = tracking.tracker()
    assert isinstance(tracker, tracking.NullTracker)
    with tracker.training_run(result=None, pictures=[]) as run_id:
        assert run_id is None
    assert tracker.log_and_register(staged=None) is None


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path, sample_data_dir):
    with artifact.writer_lock(tmp_path / "models"):
        done = run_job("jobs.retrain", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.WRITER_BUSY
    assert "being written by another process" in done.stdout
    assert artifact.current_version(tmp_path / "models") is None


def test_unreachable_tracking_server_fails_before_training(tmp_path, sample_data_dir, monkeypatch, capsys):
    monkeypatch.setattr(tracking, "CONNECT_FIRST_WAIT_S", 0.01)
    for name, value in job_env(tmp_path, sample_data_dir, MLFLOW_TRACKING_URI="http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    assert retrain_job.main() == ExitCode.TRACKING
    out = capsys.readouterr().out
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable after 5 attempts" in out
    assert "Traceback" not in out
    assert artifact.current_version(tmp_path / "models") is None


def test_batch_without_a_model_says_so(tmp_path, sample_data_dir):
    done = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.NO_MODEL
    assert "no model has been published" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [("jobs.retrain", "GENDER_GATE_TOLERANCE", "abc"), ("jobs.batch_predict", "GENDER_LOG_LEVEL", "LOUD")],
)
def test_a_bad_setting_is_named_without_a_traceback(tmp_path, sample_data_dir, module, variable, value):
    done = run_job(module, job_env(tmp_path, sample_data_dir, **{variable: value}))
    assert done.returncode == ExitCode.USAGE
    assert f"{module}: invalid settings: {variable}='{value}'" in done.stderr
    assert "Traceback" not in done.stderr

"""The retrain and batch jobs' own behaviour: the gate, the lock, an unreachable tracking server, the
model card in the registry."""

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from jobs import retrain as retrain_job
from jobs import tracking
from jobs.gate import decide
from model import artifact, drift, signing
from model.exit_codes import ExitCode
from model.sample_data import write_sample
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import new_key_pair, session_key, session_trusted
from tests.fixtures.models import job_env, run_job
from tests.fixtures.service import free_port, publish_copy
from tests.support.forgery import forge_version, sign
from tests.support.prometheus import running_pushgateway


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


def test_retrain_without_tracking_publishes_and_batch_scores_the_unlabelled(tmp_path, sample_data_dir):
    env = job_env(tmp_path, sample_data_dir)
    done = run_job("jobs.retrain", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"decision": "promoted"' in done.stdout
    version = artifact.current_version(tmp_path / "models")
    done = run_job("jobs.batch_predict", env)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "predictions" / "latest.csv", newline="") as file:
        latest = list(csv.DictReader(file))
    n_unlabelled = sum(
        1 for line in (sample_data_dir / "users.csv").read_text().splitlines() if ",none," in line
    )
    assert len(latest) == n_unlabelled
    assert {row["model_version"] for row in latest} == {version}


def test_the_bootstrap_trains_once_and_then_does_nothing(tmp_path, sample_data_dir):
    env = job_env(tmp_path, sample_data_dir, GENDER_SKIP_IF_PUBLISHED="true")
    first = run_job("jobs.retrain", env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert '"decision": "promoted"' in first.stdout
    version = artifact.current_version(tmp_path / "models")
    again = run_job("jobs.retrain", env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert '"decision": "skipped"' in again.stdout and "training on" not in again.stdout
    assert artifact.current_version(tmp_path / "models") == version
    assert len(list((tmp_path / "models" / artifact.VERSIONS).iterdir())) == 1


def signed_but_of_format_1(version_dir: Path) -> None:
    """As a release that signed models before model formats were written."""
    sign(version_dir, session_key())


def unsigned(version_dir: Path) -> None:
    """As a release before models were signed (of this format)."""
    (version_dir / signing.SIGNATURE_FILE).unlink()


@pytest.mark.parametrize(
    ("written_by", "reason"),
    [(signed_but_of_format_1, "model format 1, and this release reads formats"), (unsigned, "unsigned")],
)
def test_after_an_upgrade_the_bootstrap_replaces_a_model_this_release_cannot_load(
    tmp_path, sample_data_dir, written_by, reason
):
    env = job_env(tmp_path, sample_data_dir, GENDER_SKIP_IF_PUBLISHED="true")
    first = run_job("jobs.retrain", env)
    assert first.returncode == 0, first.stdout + first.stderr
    old = artifact.current_version(tmp_path / "models")
    # With a score no candidate can beat: the gate must not keep a champion that the upgraded API
    # refuses to load.
    old_dir = tmp_path / "models" / artifact.VERSIONS / old
    written = json.loads((old_dir / "model.json").read_text())
    del written["format"]
    written["metrics"]["grouped"]["accuracy"] = 1.0
    (old_dir / "model.json").write_text(json.dumps(written))
    written_by(old_dir)

    again = run_job("jobs.retrain", env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert reason in again.stdout + again.stderr
    assert '"decision": "promoted"' in again.stdout
    new = artifact.current_version(tmp_path / "models")
    assert new != old and artifact.load(tmp_path / "models", session_trusted()).version == new


def test_sigterm_stops_a_retrain_at_once_and_releases_the_lock(tmp_path, sample_data_dir):
    job = subprocess.Popen(
        [sys.executable, "-m", "jobs.retrain"],
        env=job_env(tmp_path, sample_data_dir),
        cwd=CHECKOUT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in job.stdout:  # an event, not a sleep: the job says when it starts training
        lines.append(line)
        if "training on" in line:
            break
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=10) == ExitCode.TERMINATED
    output = "".join(lines) + job.stdout.read()
    assert "stopped by SIGTERM" in output and "Traceback" not in output
    with artifact.writer_lock(tmp_path / "models"):  # released: taking it does not raise WriterBusy
        pass
    assert artifact.current_version(tmp_path / "models") is None
    assert not list((tmp_path / "models" / artifact.VERSIONS).glob("*"))


def test_an_unwritable_model_volume_is_one_line_naming_the_path_and_uid(capsys, monkeypatch):
    # A real read-only directory. Root writes anywhere, so as root the job runs with another
    # effective UID (as the trainer's 10001 meets a root-owned cloud share).
    root = Path(tempfile.mkdtemp())
    try:
        write_sample(root / "data", n_users=60, trips=False)
        models = root / "models"
        models.mkdir()
        for path in (root, root / "data", root / "data" / "users.csv"):
            path.chmod(0o755)
        models.chmod(0o555)
        # A key pair that UID may read (the session's private key is for its owner alone).
        key_file, trusted_dir = new_key_pair(root / "keys")
        key_file.chmod(0o644)
        for path in (root / "keys", trusted_dir):
            path.chmod(0o755)
        keys = {"GENDER_SIGNING_KEY_FILE": str(key_file), "GENDER_TRUSTED_KEYS_DIR": str(trusted_dir)}
        for name, value in job_env(root, root / "data", **keys).items():
            monkeypatch.setenv(name, value)
        uid = NOBODY if os.geteuid() == 0 else os.geteuid()
        with effective_uid(uid):
            code = retrain_job.main()
        out = capsys.readouterr().out
        assert code == ExitCode.NO_ACCESS
        assert f"UID {uid} (GID " in out and f"may not access {models / artifact.WRITER_LOCK}" in out
        assert "Traceback" not in out
    finally:
        shutil.rmtree(root)


NOBODY = 65534


@contextlib.contextmanager
def effective_uid(uid: int):
    if uid == os.geteuid():
        yield
        return
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path, sample_data_dir):
    with artifact.writer_lock(tmp_path / "models"):
        done = run_job("jobs.retrain", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.WRITER_BUSY
    assert "being written by another process" in done.stdout
    assert artifact.current_version(tmp_path / "models") is None


def test_unreachable_tracking_server_fails_before_training(tmp_path, sample_data_dir, monkeypatch, capsys):
    monkeypatch.setattr(tracking, "CONNECT_FIRST_WAIT_S", 0.05)
    env = job_env(
        tmp_path, sample_data_dir, MLFLOW_TRACKING_URI="http://127.0.0.1:9", GENDER_TRACKING_WAIT_S="0.5"
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert retrain_job.main() == ExitCode.TRACKING
    out = capsys.readouterr().out
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable after" in out and "in 0.5 s" in out
    assert "Traceback" not in out
    assert artifact.current_version(tmp_path / "models") is None


def test_a_tracked_retrain_logs_the_model_card_and_makes_it_the_registry_versions_description(
    tmp_path, sample_data_dir, tracking_server
):
    env = job_env(
        tmp_path, sample_data_dir, MLFLOW_TRACKING_URI=tracking_server.url, GENDER_TRACKING_WAIT_S="60"
    )
    done = run_job("jobs.retrain", env)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if '"event": "gate"' in line]
    record = json.loads(line[line.index("{") :])
    version_dir = tmp_path / "models" / artifact.VERSIONS / record["candidate_version"]
    card = (version_dir / artifact.CARD_FILE).read_text()

    client = MlflowClient(tracking_uri=tracking_server.url)
    registered = client.get_model_version(tracking.REGISTERED_MODEL, record["registry_version"])
    assert registered.description == card
    logged = client.download_artifacts(record["mlflow_run_id"], artifact.CARD_FILE, str(tmp_path / "logged"))
    assert Path(logged).read_text() == card


def test_retrain_without_its_signing_key_fails_naming_the_secret_and_publishes_nothing(
    tmp_path, sample_data_dir
):
    missing = tmp_path / "secret" / "signing-key.pem"
    done = run_job("jobs.retrain", job_env(tmp_path, sample_data_dir, GENDER_SIGNING_KEY_FILE=str(missing)))
    assert done.returncode == ExitCode.USAGE
    assert (
        f"no signing key at {missing}: create the Secret gender-model-signing-key in namespace "
        "gender-classifier (README: Signing keys)"
    ) in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert artifact.current_version(tmp_path / "models") is None and not missing.exists()


def test_retrain_refuses_to_sign_with_a_key_no_reader_trusts(tmp_path, sample_data_dir):
    key_file, _ = new_key_pair(tmp_path / "unlisted")
    done = run_job("jobs.retrain", job_env(tmp_path, sample_data_dir, GENDER_SIGNING_KEY_FILE=str(key_file)))
    assert done.returncode == ExitCode.USAGE
    assert "is not among the trusted keys in" in done.stdout and "training on" not in done.stdout
    assert artifact.current_version(tmp_path / "models") is None


@pytest.mark.parametrize("attacker_signs", [False, True])
def test_the_batch_refuses_a_forged_version_before_unpickling_and_writes_nothing(
    tmp_path, sample_data_dir, sample_model_dir, attacker_signs
):
    publish_copy(sample_model_dir, tmp_path / "models")
    marker = tmp_path / "the-attackers-code-ran"
    attacker_key = signing.signing_key(*new_key_pair(tmp_path / "attacker"), create=False)
    forged = forge_version(tmp_path / "models", marker, attacker_key if attacker_signs else None)
    done = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.NO_MODEL
    reason = f"signed by untrusted key '{attacker_key.key_id}'" if attacker_signs else "unsigned"
    assert f"versions/{forged}: {reason}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not marker.exists() and not (tmp_path / "predictions").exists()


def test_batch_without_a_model_says_so(tmp_path, sample_data_dir):
    done = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir))
    assert done.returncode == ExitCode.NO_MODEL
    assert "no model has been published" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def pushed(gateway, job: str) -> dict[str, float]:
    """The Pushgateway's samples of one job's group: name -> value (unlabelled ones)."""
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("job") == job
        and set(sample.labels) <= {"job", "instance"}
        and sample.name.startswith("gender_job_")  # not the Pushgateway's own push_time_seconds
    }


def test_a_failed_run_pushes_its_failure_and_the_last_success_stays(
    tmp_path, sample_data_dir, sample_model_dir
):
    with running_pushgateway(tmp_path / "gateway") as gateway:
        env = job_env(tmp_path, sample_data_dir, GENDER_PUSHGATEWAY_URL=gateway.url)
        assert run_job("jobs.batch_predict", env).returncode == ExitCode.NO_MODEL
        first = pushed(gateway, "gender-batch-predict")
        assert set(first) == {"gender_job_last_failure_timestamp_seconds"}

        publish_copy(sample_model_dir, tmp_path / "models")
        done = run_job("jobs.batch_predict", env)
        assert done.returncode == 0, done.stdout + done.stderr
        success = pushed(gateway, "gender-batch-predict")
        assert success["gender_job_rows"] > 0 and success["gender_job_last_success_timestamp_seconds"] > 0

        (tmp_path / "models" / artifact.CURRENT).unlink()
        assert run_job("jobs.batch_predict", env).returncode == ExitCode.NO_MODEL
        after = pushed(gateway, "gender-batch-predict")
        assert (
            after["gender_job_last_success_timestamp_seconds"]
            == success["gender_job_last_success_timestamp_seconds"]
        )
        assert (
            after["gender_job_last_failure_timestamp_seconds"]
            > first["gender_job_last_failure_timestamp_seconds"]
        )
        assert pushed(gateway, "gender-retrain") == {}


def test_a_pushgateway_that_does_not_answer_is_a_warning_not_a_failure(
    tmp_path, sample_data_dir, sample_model_dir
):
    publish_copy(sample_model_dir, tmp_path / "models")
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir, GENDER_PUSHGATEWAY_URL=nowhere))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"metrics not pushed to {nowhere}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_the_batch_writes_the_drift_of_its_users_beside_its_predictions(
    tmp_path, sample_data_dir, sample_model_dir
):
    publish_copy(sample_model_dir, tmp_path / "models")
    done = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    (drift_file,) = (tmp_path / "predictions").glob("drift-*.json")
    measured = json.loads(drift_file.read_text())
    assert set(measured["psi"]) == set(drift.FEATURES)
    # The unlabelled users come from the same generator as the training users.
    assert max(measured["psi"].values()) < drift.PSI_ALERT
    line = next(line for line in done.stdout.splitlines() if '"batch_predict"' in line)
    summary = json.loads(line[line.index("{") :])
    assert summary["drift"] == measured["psi"] and summary["drift_file"] == str(drift_file)


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [("jobs.retrain", "GENDER_GATE_TOLERANCE", "abc"), ("jobs.batch_predict", "GENDER_LOG_LEVEL", "LOUD")],
)
def test_a_bad_setting_is_named_without_a_traceback(tmp_path, sample_data_dir, module, variable, value):
    done = run_job(module, job_env(tmp_path, sample_data_dir, **{variable: value}))
    assert done.returncode == ExitCode.USAGE
    assert f"{module}: invalid settings: {variable}='{value}'" in done.stderr
    assert "Traceback" not in done.stderr

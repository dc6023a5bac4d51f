"""MLflow on the cloud overlay's stores, run for real: PostgreSQL for runs and the registry, an
S3-compatible bucket (SeaweedFS) for artifacts, and the server as the rendered overlay configures its
container: its command and arguments (on a loopback port), its environment (each Secret the test's
own, the ConfigMap's endpoint the local S3 server), after the db-upgrade init container. The server
runs from .tools/mlflow, the MLflow image's locked requirements (`make tools`); the jobs are the
project's own, as clients with no S3 credentials (the server proxies artifacts).

Then jobs.retrain logs, registers and moves the champion, jobs.batch_predict logs, the model's files
are in the bucket and the pyfunc loads back from the registry; and PostgreSQL stopped in the middle
of a retrain fails it, naming the tracking server, with neither the served model nor the champion
moved, until a run after PostgreSQL is back succeeds.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy
from mlflow import MlflowClient

from jobs import tracking
from model import artifact, signing
from model.exit_codes import ExitCode
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import session_trusted
from tests.fixtures.models import job_env, run_job
from tests.fixtures.service import Server, free_port
from tests.fixtures.stores import Postgres
from tests.support import dockerfile
from tests.support.images_pods import Pod, pods
from tests.support.local_pods import local_container
from tests.support.manifests import rendered_objects
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow

OVERLAY = "manifests/overlays/cloud"
MLFLOW = "Deployment/gender-mlflow"
MLFLOW_BIN = CHECKOUT_DIR / ".tools" / "mlflow" / "bin"
# The rendered server's listening arguments, replaced by a loopback port of the test's.
LISTEN_ARGS = ("--host=0.0.0.0", "--port=5000")
UPGRADE_TIMEOUT_S = 180
SERVER_START_S = 120.0
JOB_TIMEOUT_S = 600
LOCK_WAIT_S = 300.0
# The registry's alias table: a retrain writes it only when it moves the champion.
ALIAS_TABLE = "registered_model_aliases"
# Run in the MLflow image's environment (boto3, the server's credentials and endpoint): the keys
# under a prefix of a bucket, as JSON.
LIST_BUCKET = """
import json, os, sys
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2])
print(json.dumps([item["Key"] for page in pages for item in page.get("Contents", [])]))
"""
# Run by the project's interpreter with MLFLOW_TRACKING_URI set: the champion's pyfunc, loaded
# from the registry, on the users given as JSON.
PREDICT_CHAMPION = f"""
import json, sys
import mlflow
model = mlflow.pyfunc.load_model("models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION_ALIAS}")
print(json.dumps([p.model_dump() for p in model.predict(json.loads(sys.argv[1]))]))
"""


@dataclass
class CloudMlflow:
    server: Server
    env: dict[str, str]  # the server's environment
    bucket: str
    database: str  # its SQLAlchemy URL

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.server.url)

    def keys(self, prefix: str) -> list[str]:
        listed = subprocess.run(
            [str(MLFLOW_BIN / "python"), "-c", LIST_BUCKET, self.bucket, prefix],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)


def listen_on(argv: list[str], port: int) -> list[str]:
    missing = [arg for arg in LISTEN_ARGS if arg not in argv]
    if missing:
        pytest.fail(f"the rendered mlflow server has no {missing}: the test cannot move it to loopback")
    moved = {"--host=0.0.0.0": "--host=127.0.0.1", "--port=5000": f"--port={port}"}
    return [moved.get(arg, arg) for arg in argv]


def artifacts_bucket(pod: Pod) -> str:
    (destination,) = [e["value"] for e in pod.container["env"] if e["name"] == "MLFLOW_ARTIFACTS_DESTINATION"]
    parts = urlsplit(destination)
    assert parts.scheme == "s3", f"the cloud overlay's artifacts are not in a bucket: {destination}"
    return parts.netloc


def run_init_container(init: Pod, objects: list[dict], log: Path, **play) -> None:
    upgrade = local_container(init, objects, **play)
    with open(log, "wb") as output:
        done = subprocess.run(
            upgrade.argv, env=upgrade.env, stdout=output, stderr=subprocess.STDOUT, timeout=UPGRADE_TIMEOUT_S
        )
    assert done.returncode == 0, f"{init.owner} exited with {done.returncode}:\n{log.read_text()}"


def wait_healthy(server: Server) -> None:
    def healthy() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"mlflow server exited with {server.process.returncode}:\n{server.log()}")
        try:
            return requests.get(f"{server.url}/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, SERVER_START_S, 0.5, lambda: f"no /health within {SERVER_START_S} s:\n{server.log()}")


@pytest.fixture
def cloud_mlflow(postgres: Postgres, s3_server, tmp_path) -> Iterator[CloudMlflow]:
    objects = rendered_objects(OVERLAY)
    pod = pods(objects)[MLFLOW]
    bucket = artifacts_bucket(pod)
    s3 = s3_server([bucket])
    database = postgres.new_database()
    play = {
        "bin_dir": MLFLOW_BIN,
        "secrets": {
            "gender-mlflow-db": {"uri": database},
            "gender-mlflow-s3": {"credentials": s3.credentials_file()},
        },
        "site_values": {"MLFLOW_S3_ENDPOINT_URL": s3.url},
        "image_env": dockerfile.image_env("mlflow"),
    }
    (init,) = pod.init_pods()
    run_init_container(init, objects, tmp_path / "db-upgrade.log", root=tmp_path / "db-upgrade", **play)
    container = local_container(pod, objects, root=tmp_path / "mlflow", **play)
    port = free_port()
    log_path = tmp_path / "mlflow.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            listen_on(container.argv, port), env=container.env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_healthy(server)
        yield CloudMlflow(server, container.env, bucket, database)
    finally:
        server.stop()


def tracked_env(cloud_mlflow: CloudMlflow, work_dir: Path, data_dir: Path) -> dict:
    return job_env(
        work_dir, data_dir, MLFLOW_TRACKING_URI=cloud_mlflow.server.url, GENDER_TRACKING_WAIT_S="60"
    )


def gate_record(output: str) -> dict:
    (line,) = [line for line in output.splitlines() if '"event": "gate"' in line]
    return json.loads(line[line.index("{") :])


def champion(client: MlflowClient):
    return client.get_model_version_by_alias(tracking.REGISTERED_MODEL, tracking.CHAMPION_ALIAS)


def test_the_jobs_track_into_postgresql_and_the_bucket_and_the_champion_loads_back(
    cloud_mlflow, sample_data_dir, tmp_path
):
    env = tracked_env(cloud_mlflow, tmp_path, sample_data_dir)
    trained = run_job("jobs.retrain", env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    record = gate_record(trained.stdout)
    assert record["decision"] == "promoted"
    served = artifact.current_version(tmp_path / "models")
    assert served == record["candidate_version"]

    client = cloud_mlflow.client()
    version = champion(client)
    assert version.version == record["registry_version"]
    assert version.tags[tracking.VERSION_TAG] == served
    # PostgreSQL holds the description in a VARCHAR(5000), which SQLite never enforces.
    assert (
        version.description
        == (tmp_path / "models" / artifact.VERSIONS / served / artifact.CARD_FILE).read_text()
    )
    assert client.get_run(record["mlflow_run_id"]).data.tags["gate.decision"] == "promoted"

    # The server stores artifacts under its destination as mlflow-artifacts:/<path> names them.
    location = client.get_model_version_download_uri(tracking.REGISTERED_MODEL, version.version)
    prefix = urlsplit(location).path.lstrip("/")
    stored = {key.removeprefix(prefix + "/") for key in cloud_mlflow.keys(prefix)}
    # MLflow names the pyfunc's artifact folder after the staged version directory.
    published = {key.rsplit("/", 1)[-1] for key in stored if key.startswith("artifacts/")}
    assert "MLmodel" in stored, f"the bucket holds {sorted(stored)} under {prefix}"
    assert {
        artifact.MODEL_FILE,
        artifact.METADATA_FILE,
        signing.SIGNATURE_FILE,
        artifact.CARD_FILE,
    } <= published, sorted(stored)

    batch = run_job("jobs.batch_predict", env)
    assert batch.returncode == 0, batch.stdout + batch.stderr
    experiment = client.get_experiment_by_name(tracking.BATCH_EXPERIMENT)
    (batch_run,) = client.search_runs([experiment.experiment_id])
    assert batch_run.data.tags[tracking.VERSION_TAG] == served
    assert batch_run.data.metrics["rows"] > 0

    predicted = subprocess.run(
        [sys.executable, "-c", PREDICT_CHAMPION, json.dumps(tracking.INPUT_EXAMPLE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
        check=False,
    )
    assert predicted.returncode == 0, predicted.stderr
    local = artifact.load(tmp_path / "models", session_trusted()).predictor.predict(tracking.INPUT_EXAMPLE)
    assert json.loads(predicted.stdout) == [{"gender": p.gender, "probability": p.probability} for p in local]


def waiting_for_the_alias_table(database: str) -> bool:
    """Whether a session of the server waits for a lock to write the registry's aliases."""
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as connection:
            return bool(
                connection.scalar(
                    sqlalchemy.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND query ILIKE :table"
                    ),
                    {"table": f"%{ALIAS_TABLE}%"},
                )
            )
    finally:
        engine.dispose()


def test_postgresql_stopped_during_a_retrain_fails_it_and_moves_neither_model(
    cloud_mlflow, postgres, sample_data_dir, tmp_path
):
    env = tracked_env(cloud_mlflow, tmp_path, sample_data_dir)
    first = run_job("jobs.retrain", env)
    assert first.returncode == 0, first.stdout + first.stderr
    served = artifact.current_version(tmp_path / "models")
    client = cloud_mlflow.client()
    before = champion(client).version

    # The test holds the alias table against writes (reads go on), so that the retrain stops at
    # the champion's move, after it registered its version, while PostgreSQL goes down.
    holder = sqlalchemy.create_engine(cloud_mlflow.database)
    connection = holder.connect()
    connection.execute(sqlalchemy.text(f"LOCK TABLE {ALIAS_TABLE} IN SHARE MODE"))
    retrain = subprocess.Popen(
        [sys.executable, "-m", "jobs.retrain"],
        env=env,
        cwd=CHECKOUT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: retrain.poll() is not None or waiting_for_the_alias_table(cloud_mlflow.database),
            LOCK_WAIT_S,
            0.2,
            "the retrain never reached the champion's move",
        )
        assert retrain.poll() is None, retrain.communicate()[0]
        postgres.stop()
        output, _ = retrain.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        retrain.kill()
        connection.invalidate()
        holder.dispose()

    assert retrain.returncode == ExitCode.TRACKING, output
    assert f"MLflow tracking server {cloud_mlflow.server.url} failed" in output
    assert "Traceback" not in output
    assert postgres.password not in output
    assert artifact.current_version(tmp_path / "models") == served
    assert sorted(p.name for p in (tmp_path / "models" / artifact.VERSIONS).iterdir()) == [served]

    postgres.start()
    assert champion(client).version == before
    again = run_job("jobs.retrain", env)
    assert again.returncode == 0, again.stdout + again.stderr
    record = gate_record(again.stdout)
    assert record["decision"] == "promoted"
    assert artifact.current_version(tmp_path / "models") == record["candidate_version"]
    assert champion(client).tags[tracking.VERSION_TAG] == record["candidate_version"]

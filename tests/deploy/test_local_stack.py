"""End to end, real processes: the README's main command (scripts/stack.sh, behind `make up`).

MLflow up -> retrain -> service ready -> prediction -> a retrain on degraded data is refused by
the gate -> batch_predict writes its file -> the registry's champion is the served version.
Prometheus (Debian's) scrapes the API and the Pushgateway and loads the one rules file.
"""

import contextlib
import csv
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import requests
import yaml
from mlflow import MlflowClient

from jobs import tracking
from model import artifact, drift
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import new_key_pair
from tests.fixtures.service import free_port
from tests.support.polling import wait_until
from tests.support.users import FULL_USER, ORIGINAL_EXAMPLE

pytestmark = pytest.mark.slow
STACK_TIMEOUT_S = 420
SERVE_START_S = 120
# A short scrape interval, so that the first scrapes land within the test.
PROMETHEUS_INTERVAL = "1s"
SCRAPE_WAIT_S = 30
RULES = CHECKOUT_DIR / "manifests" / "components" / "monitoring" / "prometheus" / "rules.yaml"


def degrade(source, target):
    """Same users, but the labels shuffled: no model can learn them, the gate must refuse."""
    shutil.copytree(source, target)
    with open(source / "users.csv") as file:
        rows = list(csv.DictReader(file))
    labels = [r["gender"] for r in rows if r["gender"] != "none"]
    random.Random(1).shuffle(labels)
    shuffled = iter(labels)
    for row in rows:
        if row["gender"] != "none":
            row["gender"] = next(shuffled)
    with open(target / "users.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def stack(tmp_path):
    env = {
        **os.environ,
        "STACK_DIR": str(tmp_path / "var"),
        "API_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "PUSHGATEWAY_PORT": str(free_port()),
        "PROMETHEUS_INTERVAL": PROMETHEUS_INTERVAL,
    }
    env.pop("MLFLOW_TRACKING_URI", None)

    def run(*args, **extra):
        return subprocess.run(
            ["scripts/stack.sh", *args],
            env={**env, **extra},
            cwd=CHECKOUT_DIR,
            capture_output=True,
            text=True,
            timeout=STACK_TIMEOUT_S,
        )

    try:
        yield env, run
    finally:
        stopped = run("down")
        assert "stopped the local stack" in stopped.stdout, stopped.stdout + stopped.stderr


def test_local_stack_end_to_end(stack, tmp_path):
    env, run = stack
    api = f"http://127.0.0.1:{env['API_PORT']}"
    mlflow_url = f"http://127.0.0.1:{env['MLFLOW_PORT']}"

    started = run("up")
    assert started.returncode == 0, started.stdout + started.stderr
    assert '"decision": "promoted"' in started.stdout
    assert f"curl -s -X POST {api}/predict_gender" in started.stdout
    prometheus = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"
    assert prometheus in started.stdout
    assert f"http://127.0.0.1:{env['PUSHGATEWAY_PORT']}" in started.stdout
    assert_prometheus_scrapes_the_stack(prometheus)

    answer = requests.post(
        f"{api}/predict_gender",
        json={"name": "Wilma Mcinnis", "age": 48, "company": "Acme Factory"},
        timeout=10,
    )
    assert answer.status_code == 200
    served = answer.json()["model_version"]
    assert answer.json()["gender"] == "female"

    degraded = tmp_path / "degraded"
    degrade(tmp_path / "var" / "sample-data", degraded)
    refused = run("retrain", DATA_DIR=str(degraded))
    assert refused.returncode == 0, refused.stdout + refused.stderr
    assert '"decision": "refused"' in refused.stdout
    assert requests.get(f"{api}/version", timeout=10).json()["version"] == served

    batch = run("batch")
    assert batch.returncode == 0, batch.stdout + batch.stderr
    latest = tmp_path / "var" / "predictions" / "latest.csv"
    with open(latest) as file:
        predictions = list(csv.DictReader(file))
    assert predictions
    assert {p["model_version"] for p in predictions} == {served}

    client = MlflowClient(tracking_uri=mlflow_url)
    champion = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, tracking.CHAMPION_ALIAS)
    assert champion.tags[tracking.VERSION_TAG] == served
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`gate.decision` = 'refused'")
    assert len(runs) == 1
    assert runs[0].data.metrics["gate_promoted"] == 0.0
    batch_runs = client.search_runs([client.get_experiment_by_name(tracking.BATCH_EXPERIMENT).experiment_id])
    assert batch_runs[0].data.metrics["rows"] == len(predictions)
    assert {f"psi.{feature}" for feature in drift.FEATURES} <= set(batch_runs[0].data.metrics)

    # Both jobs pushed their metrics, and Prometheus scraped them from the Pushgateway.
    pushed = {
        ("gender-retrain", "gender_job_gate_promoted"): 0.0,  # the last retrain, refused
        ("gender-retrain", "gender_job_gate_refusals_in_a_row"): 1.0,
        ("gender-batch-predict", "gender_job_rows"): float(len(predictions)),
    }
    for (job, metric), value in pushed.items():
        expr = f'{metric}{{job="{job}"}}'
        wait_until(
            lambda expr=expr, value=value: query(prometheus, expr) == [value],
            SCRAPE_WAIT_S,
            0.5,
            lambda expr=expr: f"{expr}: {query(prometheus, expr)}",
        )
    for job in ("gender-retrain", "gender-batch-predict"):
        assert query(prometheus, f'gender_job_last_success_timestamp_seconds{{job="{job}"}}'), job

    # The registered champion under MLflow's own tools answers as the API does, and refuses as it does.
    champion_uri = f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION_ALIAS}"
    users = [ORIGINAL_EXAMPLE, FULL_USER]
    api_answers = requests.post(f"{api}/predict_gender", json={"instances": users}, timeout=10).json()
    expected = [p["probability"] for p in api_answers["predictions"]]
    mlflow.set_tracking_uri(mlflow_url)
    in_process = mlflow.pyfunc.load_model(champion_uri).predict(users)
    assert [p.probability for p in in_process] == pytest.approx(expected, abs=1e-9)
    # The signature travels with the logged version, and the pyfunc verifies it too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENDER_TRUSTED_KEYS_DIR", str(new_key_pair(tmp_path / "other-keys")[1]))
        with pytest.raises(artifact.UntrustedVersion, match="signed by untrusted key"):
            mlflow.pyfunc.load_model(champion_uri)
    with serve_model(champion_uri, mlflow_url, tmp_path / "serve.log") as invocations:
        served = requests.post(invocations, json={"inputs": users}, timeout=30)
        assert served.status_code == 200, served.text
        answers = served.json()["predictions"]
        assert [p["gender"] for p in answers] == [p["gender"] for p in api_answers["predictions"]]
        assert [p["probability"] for p in answers] == pytest.approx(expected, abs=1e-9)
        for refused in ({"age": 30, "shoe_size": 38}, {"age": 500}, {"age": "30"}):
            answer = requests.post(invocations, json={"inputs": [refused]}, timeout=30)
            assert answer.status_code == 400, (refused, answer.text)
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def query(prometheus: str, expr: str) -> list[float]:
    """The values of an instant query's series."""
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    return [float(sample["value"][1]) for sample in answer.json()["data"]["result"]]


def assert_prometheus_scrapes_the_stack(prometheus: str) -> None:
    """Both targets up as the jobs the rules name, and the rules file's groups loaded."""

    def up(job: str) -> list:
        return query(prometheus, f'up{{job="{job}"}}')

    for job in ("gender-api", "gender-pushgateway"):
        wait_until(
            lambda job=job: up(job) == [1.0],
            SCRAPE_WAIT_S,
            0.5,
            lambda job=job: f"up{{job={job}}}: {up(job)}",
        )
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    expected = yaml.safe_load(RULES.read_text())["groups"]
    assert sorted(group["name"] for group in rules) == sorted(group["name"] for group in expected)


@contextlib.contextmanager
def serve_model(model_uri: str, tracking_uri: str, log_path):
    """`mlflow models serve` in this environment; yields its /invocations URL."""
    port = free_port()
    bin_dir = Path(sys.executable).parent  # the scoring server starts uvicorn from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if server.poll() is not None:
            raise AssertionError(
                f"mlflow models serve exited with {server.returncode}:\n{log_path.read_text()}"
            )
        try:
            return requests.get(f"{base}/ping", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet
            return False

    try:
        wait_until(ready, SERVE_START_S, 0.5, lambda: f"{base}/ping not ready:\n{log_path.read_text()}")
        yield f"{base}/invocations"
    finally:
        server.terminate()
        server.wait(30)

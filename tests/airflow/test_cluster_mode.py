"""The DAG gender_weekly in cluster mode, run by dag.test() against the stand-in API server.

Each step creates its Job, follows it to the end and copies its log into the task log; a failed
Job fails its task with that log; a pod that cannot start (an image that is missing) fails the
task within the pod start timeout with the pod's reason and deletes the Job; a ServiceAccount
without the rights fails at once with the API server's refusal. The component airflow's Role
grants exactly the rights these runs ask for.
"""

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.airflow_venv import DAGS, run_dag
from tests.support.kube_stub import KubeStub, Permission, role_permissions

pytestmark = pytest.mark.slow
NAMESPACE = "gender-classifier"
COMPONENT_RBAC = CHECKOUT_DIR / "manifests" / "components" / "airflow" / "rbac.yaml"
AIRFLOW_USER = "system:serviceaccount:airflow:gender-airflow"
STEPS = ["retrain", "batch_predict", "drift_report"]
QUICK_START = {"GENDER_AIRFLOW_POD_START_TIMEOUT_S": "2"}  # how long a pod may take to start, here


def component_role() -> dict:
    [role] = [doc for doc in yaml.safe_load_all(COMPONENT_RBAC.read_text()) if doc["kind"] == "Role"]
    return role


def run_cluster_dag(stub: KubeStub, airflow_home: Path, tmp_path: Path, **env: str) -> tuple[dict, str]:
    kubeconfig = stub.write_kubeconfig(tmp_path / "kubeconfig")
    settings = {
        "GENDER_AIRFLOW_MODE": "cluster",
        "GENDER_AIRFLOW_JOB_POLL_INTERVAL_S": "0.1",
        "KUBECONFIG": str(kubeconfig),
        **env,
    }
    return run_dag("test", airflow_home, **settings)


def stub(**kwargs) -> KubeStub:
    """The stand-in API server, granting the component's Role to Airflow's ServiceAccount."""
    granted = role_permissions(component_role())
    return KubeStub(NAMESPACE, granted=granted, user=AIRFLOW_USER, pods_on_create=True, **kwargs)


def job_file(step: str) -> dict:
    return json.loads((DAGS / "gender_jobs" / f"{step}.json").read_text())


def test_each_step_runs_its_job_to_the_end_with_the_log_in_the_task_log(tmp_path, airflow_home):
    with stub() as server:
        server.log_lines = ["loading users.csv", '{"event": "gate", "decision": "promoted"}']
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "success", output
    assert result["tasks"] == dict.fromkeys(STEPS, "success")
    assert [job["metadata"]["name"].rsplit("-", 1)[0] for job in server.created] == [
        "job-gender-retrain",
        "job-gender-batch-predict",
        "job-gender-drift-report",
    ]
    for step, job in zip(STEPS, server.created, strict=True):
        [container] = job["spec"]["template"]["spec"]["containers"]
        [expected] = job_file(step)["spec"]["template"]["spec"]["containers"]
        assert container["command"] == expected["command"]
        assert container["image"] == expected["image"]
    assert '{"event": "gate", "decision": "promoted"}' in output  # the gate's decision, in the task log


def test_a_failed_job_fails_its_task_with_the_jobs_log(tmp_path, airflow_home):
    with stub() as server:
        server.job_outcome = "fail"
        server.log_lines = ["error: users.csv, row 12 (line 13), column 'age': not an integer: 'abc'"]
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "failed", output
    assert result["tasks"] == {
        "retrain": "failed",
        "batch_predict": "upstream_failed",
        "drift_report": "upstream_failed",
    }
    assert "column 'age': not an integer: 'abc'" in output
    [job] = server.created
    assert f"Kubernetes job '{job['metadata']['name']}' is failed with error 'BackoffLimitExceeded'" in output


def test_a_pod_that_cannot_pull_its_image_fails_the_task_and_deletes_its_job(tmp_path, airflow_home):
    with stub() as server:
        server.pending_cause = "ImagePullBackOff"
        result, output = run_cluster_dag(server, airflow_home, tmp_path, **QUICK_START)
    assert result["state"] == "failed", output
    assert result["tasks"]["retrain"] == "failed"
    [job] = server.created
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    assert f"Kubernetes Job {job['metadata']['name']} deleted: pod" in output
    assert f'did not start within 2 s: ImagePullBackOff: Back-off pulling image "{image}"' in output
    assert server.jobs == {}


def test_without_the_rights_the_task_fails_with_the_refusal(tmp_path, airflow_home):
    with KubeStub(NAMESPACE, granted=set(), user=AIRFLOW_USER, pods_on_create=True) as server:
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "failed", output
    assert result["tasks"]["retrain"] == "failed"
    refusal = f'jobs.batch is forbidden: User "{AIRFLOW_USER}" cannot create resource "jobs"'
    assert f"the Kubernetes API refused retrain: {refusal}" in output
    assert server.created == []


def test_the_role_grants_exactly_what_the_operator_calls(tmp_path, airflow_home):
    """The rights asked for by a run that succeeds and by one whose pod never starts (the only
    path that deletes a Job) are the Role's, no more and no fewer."""
    asked: set[Permission] = set()
    for pending_cause in (None, "ImagePullBackOff"):
        with stub() as server:
            server.pending_cause = pending_cause
            run_cluster_dag(server, airflow_home, tmp_path, **QUICK_START)
        asked |= set(server.permissions)
    assert asked == role_permissions(component_role())

"""The DAG gender_weekly in cluster mode, run by dag.test() against the stand-in API server, which
serves the CronJobs of the cloud overlay with the component airflow as `kubectl kustomize` renders them.

Each step creates the Job of its CronJob's job template, as `kubectl create job --from` does, follows
it to the end and copies its log into the task log; a CronJob that is not applied fails the task
with the API server's answer; a failed
Job fails its task with that log; a pod that cannot start (an image that is missing) fails the
task within the pod start timeout with the pod's reason and deletes the Job; a ServiceAccount
without the rights fails at once with the API server's refusal. The component airflow's Role
grants exactly the rights these runs ask for.
"""

import copy
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.airflow_venv import FAILED_AT_RETRAIN, STEPS, run_dag
from tests.support.kube_stub import KubeStub, Permission, role_permissions
from tests.support.manifests import find, rendered_objects

pytestmark = pytest.mark.slow
NAMESPACE = "gender-classifier"
COMPONENT_RBAC = CHECKOUT_DIR / "manifests" / "components" / "airflow" / "rbac.yaml"
# A deployment that runs the steps from Airflow: the cloud overlay with the component airflow.
DEPLOYMENT = "manifests/tests/cloud-with-airflow"
AIRFLOW_USER = "system:serviceaccount:airflow:gender-airflow"
# The CronJob each step's Job is made from, and the command it runs instead of the CronJob's.
CRONJOBS = {
    "retrain": "gender-retrain",
    "batch_predict": "gender-batch-predict",
    "drift_report": "gender-batch-predict",
}
COMMANDS = {"drift_report": ["python", "-m", "jobs.drift_report"]}
# What KubernetesJobOperator adds to a pod template: the labels it finds its pods by.
AIRFLOW_POD_LABELS = {
    "dag_id", "task_id", "run_id", "try_number", "kubernetes_pod_operator", "airflow_version",
    "airflow_kpo_in_cluster",
}  # fmt: skip
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


@cache
def rendered_cronjobs() -> dict[str, dict]:
    objects = rendered_objects(DEPLOYMENT)
    return {name: find(objects, "CronJob", name) for name in set(CRONJOBS.values())}


def stub(granted: set[Permission] | None = None) -> KubeStub:
    """The stand-in API server with the deployment's CronJobs applied, granting Airflow's
    ServiceAccount the component's Role (or `granted`)."""
    rights = role_permissions(component_role()) if granted is None else granted
    server = KubeStub(NAMESPACE, granted=rights, user=AIRFLOW_USER, pods_on_create=True)
    server.cronjobs.clear()
    for cronjob in rendered_cronjobs().values():
        server.add_cronjob(cronjob)
    return server


def without_empty(value):
    """The object with its empty lists, maps and nulls left out, as the API server stores it."""
    if isinstance(value, dict):
        kept = {key: without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, [], {})}
    if isinstance(value, list):
        return [without_empty(item) for item in value]
    return value


def test_each_step_runs_the_job_of_its_applied_cronjob_with_the_log_in_the_task_log(tmp_path, airflow_home):
    """Each step's Job, in order, is `kubectl create job --from=cronjob/...`'s: the rendered job
    template, owned by the CronJob, plus only what the operator adds to find and clean up its pods;
    each runs to the end and its log is in the task log."""
    with stub() as server:
        server.log_lines = ["loading users.csv", '{"event": "gate", "decision": "promoted"}']
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "success", output
    assert result["tasks"] == dict.fromkeys(STEPS, "success")
    assert '{"event": "gate", "decision": "promoted"}' in output  # the task log shows the job's own line
    for step, job in zip(STEPS, server.created, strict=True):
        cronjob = rendered_cronjobs()[CRONJOBS[step]]
        template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
        if step in COMMANDS:
            template["spec"]["template"]["spec"]["containers"][0]["command"] = COMMANDS[step]
        job = without_empty(job)
        metadata = job["metadata"]
        assert metadata.pop("name").startswith(f"job-gender-{step.replace('_', '-')}-")
        assert metadata.pop("namespace") == NAMESPACE
        assert metadata["annotations"].pop("cronjob.kubernetes.io/instantiate") == "manual"
        [owner] = metadata.pop("ownerReferences")
        assert owner == {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": CRONJOBS[step],
            "uid": server.cronjobs[CRONJOBS[step]]["metadata"]["uid"],
            "controller": True,
        }
        # Airflow's own: one pod at a time, finished Jobs removed after a week, its labels on the pod.
        assert job["spec"].pop("parallelism") == 1
        assert job["spec"].pop("ttlSecondsAfterFinished") == 7 * 24 * 3600
        pod = job["spec"]["template"]
        assert pod["metadata"].pop("name").startswith(step.replace("_", "-"))
        assert pod["metadata"].pop("namespace") == NAMESPACE
        labels = pod["metadata"]["labels"]
        assert set(labels) - set(template["spec"]["template"]["metadata"]["labels"]) == AIRFLOW_POD_LABELS
        for label in AIRFLOW_POD_LABELS:
            labels.pop(label)
        # Defaults the API server fills in anyway, which the client's models spell out.
        assert pod["spec"].pop("hostNetwork") is False
        for container in pod["spec"]["containers"]:
            assert container.pop("terminationMessagePolicy") == "File"
        expected = {"metadata": template["metadata"], "spec": template["spec"]}
        assert without_empty(job) == {"apiVersion": "batch/v1", "kind": "Job"} | without_empty(expected)


def test_a_cronjob_that_is_not_applied_fails_the_task_with_the_api_servers_answer(tmp_path, airflow_home):
    with stub() as server:
        del server.cronjobs["gender-retrain"]
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "failed", output
    assert result["tasks"] == FAILED_AT_RETRAIN
    assert 'the Kubernetes API refused retrain: cronjobs.batch "gender-retrain" not found' in output
    assert server.created == []


def test_a_failed_job_fails_its_task_with_the_jobs_log(tmp_path, airflow_home):
    with stub() as server:
        server.job_outcome = "fail"
        server.log_lines = ["error: users.csv, row 12 (line 13), column 'age': not an integer: 'abc'"]
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "failed", output
    assert result["tasks"] == FAILED_AT_RETRAIN
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
    with stub(granted=set()) as server:
        result, output = run_cluster_dag(server, airflow_home, tmp_path)
    assert result["state"] == "failed", output
    assert result["tasks"] == FAILED_AT_RETRAIN
    refusal = (
        f'cronjobs.batch "gender-retrain" is forbidden: User "{AIRFLOW_USER}" cannot get resource "cronjobs"'
    )
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

"""airflow/values.yaml, the official Helm chart's values, agrees with what the cluster mode needs:
the Airflow release of airflow/requirements.in, the DAG folder git-sync carries, the cluster mode,
and the ServiceAccount the component airflow's RoleBinding names."""

import re

import yaml

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.airflow_venv import DAGS

VALUES = CHECKOUT_DIR / "airflow" / "values.yaml"
REQUIREMENTS = CHECKOUT_DIR / "airflow" / "requirements.in"
COMPONENT_RBAC = CHECKOUT_DIR / "manifests" / "components" / "airflow" / "rbac.yaml"


def test_the_chart_runs_the_pinned_airflow_on_the_synced_dag_folder_in_cluster_mode():
    values = yaml.safe_load(VALUES.read_text())
    [pinned] = re.findall(r"^apache-airflow==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)
    assert values["airflowVersion"] == values["defaultAirflowTag"] == pinned
    git_sync = values["dags"]["gitSync"]
    assert git_sync["enabled"] is True
    assert CHECKOUT_DIR / git_sync["subPath"] == DAGS
    env = {item["name"]: item["value"] for item in values["env"]}
    assert env["GENDER_AIRFLOW_MODE"] == "cluster"


def test_the_workers_run_under_the_account_the_component_binds():
    values = yaml.safe_load(VALUES.read_text())
    [binding] = [d for d in yaml.safe_load_all(COMPONENT_RBAC.read_text()) if d["kind"] == "RoleBinding"]
    [subject] = binding["subjects"]
    assert values["executor"] == "KubernetesExecutor"  # task pods run under the workers' account
    assert values["workers"]["serviceAccount"] == {"create": True, "name": subject["name"]}
    env = {item["name"]: item["value"] for item in values["env"]}
    assert env["GENDER_AIRFLOW_NAMESPACE"] == binding["metadata"]["namespace"]

"""The spark-batch component (manifests/components/spark-batch): the SparkApplication
gender-batch-spark follows the overlay's jobs image and environment, mounts what the CronJob
gender-batch-predict mounts, meets the restricted profile, runs its executors without API rights,
and validates against the Kubeflow Spark Operator's API types (kubeflow-spark-api, `make tools`).
checkov and kubernetes-validate have no schema for a SparkApplication: what they would hold for
its pods is held here.
"""

import copy
import shutil
import subprocess

import pytest

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.manifests import (
    DEPLOYABLE,
    KUSTOMIZATIONS,
    RENDER_TIMEOUT_S,
    find,
    image_tag,
    kubectl,
    load_objects,
    rendered_objects,
    selects,
    validate_spark,
)

NAMESPACE = "gender-classifier"
UID = 10001
COMBINATIONS = ["manifests/tests/minikube-with-spark-batch", "manifests/tests/cloud-with-spark-batch"]
APP = "gender-batch-spark"
DRIVER_ACCOUNT = "gender-spark-driver"
EXECUTOR_ACCOUNT = "gender-workload"
ROLES = ("driver", "executor")
TRUSTED_KEYS = "gender-model-trusted-keys"
# What Spark 4's driver does with the API (rbac.yaml says which call needs which verb).
DRIVER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete", "deletecollection"],
    },
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete", "deletecollection"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["delete", "deletecollection"]},
]
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
DRIVER_PORT, BLOCK_MANAGER_PORT = 7078, 7079
API_SERVER_PORTS = {443, 6443, 8443}


def objects_of(combination: str) -> tuple[list[dict], dict, dict]:
    """(everything rendered, the SparkApplication, the batch CronJob's container)."""
    objects = rendered_objects(combination)
    cronjob = find(objects, "CronJob", "gender-batch-predict")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return objects, find(objects, "SparkApplication", APP), container


def config_of(objects: list[dict]) -> dict:
    (config,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gender-config-")
    ]
    return config


def test_the_combinations_are_rendered_and_checked_with_the_others():
    # test_manifests.py renders, validates (kubernetes-validate --strict, checkov) and checks the
    # names, labels and policies of every combination in DEPLOYABLE.
    assert set(COMBINATIONS) <= set(KUSTOMIZATIONS)
    assert set(COMBINATIONS) <= set(DEPLOYABLE)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_image_follows_the_jobs_image(combination):
    objects, app, container = objects_of(combination)
    spec = app["spec"]
    assert spec["image"] == container["image"].replace("/gender-jobs:", "/gender-spark:").replace(
        "gender-jobs:", "gender-spark:"
    )
    assert spec["image"].rsplit("/", 1)[-1].split(":")[0] == "gender-spark"
    assert image_tag(spec["image"]) == image_tag(container["image"]) not in ("", "latest")
    assert spec["imagePullPolicy"] == container["imagePullPolicy"]
    version = find(objects, "CronJob", "gender-batch-predict")["metadata"]["labels"][
        "app.kubernetes.io/version"
    ]
    assert version == image_tag(container["image"])
    assert app["metadata"]["labels"]["app.kubernetes.io/version"] == version
    for role in ROLES:
        assert spec[role]["labels"]["app.kubernetes.io/version"] == version, role
    assert "image" not in spec["driver"] and "image" not in spec["executor"]  # spec.image for both


@pytest.fixture(scope="module")
def rendered_minikube_spark(tmp_path_factory):
    """minikube-with-spark-batch with the jobs image at a registry with a port and tag 1.2.3."""
    root = tmp_path_factory.mktemp("spark") / "manifests"
    shutil.copytree(CHECKOUT_DIR / "manifests", root)
    overlay = root / "overlays" / "minikube" / "kustomization.yaml"
    text = overlay.read_text()
    text = text.replace(
        "  - name: gender-jobs\n    newTag: dev",
        "  - name: gender-jobs\n    newName: registry.local:5000/team/gender-jobs\n    newTag: 1.2.3",
    ).replace("app.kubernetes.io/version: dev", "app.kubernetes.io/version: 1.2.3")
    assert "1.2.3" in text
    overlay.write_text(text)
    result = subprocess.run(
        [kubectl(), "kustomize", str(root / "tests" / "minikube-with-spark-batch")],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return load_objects(result.stdout)


def test_the_image_tag_follows_a_new_overlay_tag(rendered_minikube_spark):
    # Rendered with the overlay's images at another tag, as `make deploy TAG=...` does (in a copy).
    app = find(rendered_minikube_spark, "SparkApplication", APP)
    assert app["spec"]["image"] == "registry.local:5000/team/gender-spark:1.2.3"
    assert app["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_driver_and_executors_get_the_batch_cronjobs_environment(combination):
    objects, app, container = objects_of(combination)
    config = config_of(objects)
    for role in ROLES:
        env = app["spec"][role]["env"]
        assert env == container["env"], role  # the same entries: gender-config keys, HOME, MPLCONFIGDIR
        values = {}
        for entry in env:
            ref = entry.get("valueFrom", {}).get("configMapKeyRef")
            if ref is not None:
                assert ref["name"] == config["metadata"]["name"], (
                    f"{role}: {entry['name']}"
                )  # the hashed name
                values[entry["name"]] = config["data"][ref["key"]]
            else:
                values[entry["name"]] = entry["value"]
        assert values["GENDER_OUTPUT_DIR"] == "/predictions", role
        assert values["HOME"] == "/tmp", role
        assert values["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", role
        assert "GENDER_SPARK_MASTER" not in values, f"{role}: spark-submit gives the master"
    assert app["spec"]["arguments"] == ["--engine", "spark", "--input", "/data/users.parquet"]
    assert (
        app["spec"]["mainApplicationFile"]
        == "local:///opt/venv/lib/python3.11/site-packages/jobs/batch_predict.py"
    )
    assert (app["spec"]["type"], app["spec"]["mode"], app["spec"]["pythonVersion"]) == (
        "Python",
        "cluster",
        "3",
    )
    assert app["spec"]["sparkVersion"] == "4.3.0"


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_driver_and_executors_mount_the_data_predictions_and_trusted_keys(combination):
    objects, app, _ = objects_of(combination)
    config = config_of(objects)["data"]
    volumes = {v["name"]: v for v in app["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "gender-data"}
    assert volumes["trusted-keys"]["configMap"] == {"name": TRUSTED_KEYS, "optional": True}
    scratch = [name for name in volumes if name.startswith("spark-local-dir-")]
    assert scratch, "Spark's local dirs must be a volume of their own"
    for role in ROLES:
        mounts = {m["mountPath"]: m for m in app["spec"][role]["volumeMounts"]}
        assert mounts["/data"] == {"name": "data", "mountPath": "/data", "readOnly": True}, role
        predictions = mounts[config["GENDER_OUTPUT_DIR"]]
        assert (predictions["name"], predictions.get("subPath")) == ("data", "predictions"), role
        assert not predictions.get("readOnly"), f"{role} writes the predictions"
        keys = mounts[config["GENDER_TRUSTED_KEYS_DIR"]]
        assert (keys["name"], keys["readOnly"]) == ("trusted-keys", True), role
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], role
        assert {m["name"] for m in mounts.values()} >= set(scratch), role
        for name in scratch:
            assert "sizeLimit" in volumes[name]["emptyDir"], name
        assert set(volumes) >= {m["name"] for m in mounts.values()}, role
    # The data volume is shared by the driver and executors: ReadWriteMany where pods spread over nodes.
    claim = find(objects, "PersistentVolumeClaim", "gender-data")["spec"]["accessModes"]
    assert claim == (["ReadWriteMany"] if "cloud" in combination else ["ReadWriteOnce"])


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_driver_and_executors_meet_the_restricted_profile(combination):
    _, app, _ = objects_of(combination)
    for role in ROLES:
        spec = app["spec"][role]
        assert spec["podSecurityContext"] == POD_SECURITY, role
        assert spec["securityContext"] == CONTAINER_SECURITY, role
        assert spec["labels"]["app.kubernetes.io/part-of"] == NAMESPACE, role
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
        } <= set(spec["labels"]), role
        assert spec["cores"] >= 1 and spec["coreRequest"] and spec["coreLimit"], role
        assert spec["memory"] and spec["memoryOverhead"], role
    assert app["spec"]["executor"]["instances"] == 2
    restart = app["spec"]["restartPolicy"]
    assert restart["type"] in ("Never", "OnFailure")
    if restart["type"] == "OnFailure":
        assert 0 < restart["onFailureRetries"] <= 3 and restart["onFailureRetryInterval"] > 0


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_only_the_driver_has_api_rights_and_executors_get_no_token(combination):
    objects, app, _ = objects_of(combination)
    assert app["spec"]["driver"]["serviceAccount"] == DRIVER_ACCOUNT
    role = find(objects, "Role", DRIVER_ACCOUNT)
    assert role["rules"] == DRIVER_RULES
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == DRIVER_ACCOUNT]
    assert [b["metadata"]["name"] for b in bindings] == [DRIVER_ACCOUNT]
    assert bindings[0]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": DRIVER_ACCOUNT,
    }
    assert bindings[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": DRIVER_ACCOUNT, "namespace": NAMESPACE}
    ]
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    find(objects, "ServiceAccount", DRIVER_ACCOUNT)
    # The executors: an account bound to nothing, whose token is never mounted.
    executor = app["spec"]["executor"]
    assert executor["serviceAccount"] == EXECUTOR_ACCOUNT
    assert find(objects, "ServiceAccount", EXECUTOR_ACCOUNT)["automountServiceAccountToken"] is False
    assert executor["template"]["spec"]["automountServiceAccountToken"] is False
    bound = {s["name"] for o in objects if o["kind"] == "RoleBinding" for s in o["subjects"]}
    assert EXECUTOR_ACCOUNT not in bound


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_network_policies_connect_driver_executors_mlflow_and_the_api_server(combination):
    objects, app, _ = objects_of(combination)
    driver, executor = (app["spec"][role]["labels"] for role in ROLES)
    conf = app["spec"]["sparkConf"]
    assert (int(conf["spark.driver.port"]), int(conf["spark.blockManager.port"])) == (
        DRIVER_PORT,
        BLOCK_MANAGER_PORT,
    )
    policies = [o["spec"] for o in objects if o["kind"] == "NetworkPolicy"]

    def allowed(direction: str, pod: dict, peer: dict | None) -> set:
        """Ports `pod` may use in `direction` with `peer` (None: an address no pod selector matches)."""
        ports = set()
        for policy in policies:
            if direction.capitalize() not in policy["policyTypes"] or not selects(policy["podSelector"], pod):
                continue
            for rule in policy.get(direction, []):
                peers = rule.get("to" if direction == "egress" else "from")
                if peers is None or any(
                    "podSelector" in p
                    and "namespaceSelector" not in p
                    and peer is not None
                    and selects(p["podSelector"], peer)
                    for p in peers
                ):
                    ports |= {p["port"] for p in rule["ports"]}
        return ports

    mlflow = {"app.kubernetes.io/component": "mlflow", "app.kubernetes.io/part-of": NAMESPACE}
    assert {DRIVER_PORT, BLOCK_MANAGER_PORT} <= allowed("egress", executor, driver)
    assert {DRIVER_PORT, BLOCK_MANAGER_PORT} <= allowed("ingress", driver, executor)
    assert BLOCK_MANAGER_PORT in allowed("egress", driver, executor) & allowed("ingress", executor, driver)
    assert BLOCK_MANAGER_PORT in allowed("egress", executor, executor) & allowed(
        "ingress", executor, executor
    )
    assert 5000 in allowed("egress", driver, mlflow) & allowed("ingress", mlflow, driver)
    assert allowed("egress", driver, None) >= API_SERVER_PORTS
    # Executors: the driver, each other and DNS; neither MLflow nor the API server.
    assert 5000 not in allowed("egress", executor, mlflow)
    assert not API_SERVER_PORTS & allowed("egress", executor, None)
    assert DRIVER_PORT not in allowed("ingress", executor, driver)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_spark_application_validates_against_the_operators_api_types(combination):
    objects = [
        o for o in rendered_objects(combination) if o["apiVersion"].startswith("sparkoperator.k8s.io/")
    ]
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in objects] == [f"SparkApplication/{APP}"]
    status, report = validate_spark(objects)
    assert [entry for entry in report if entry["errors"]] == []
    assert status == 0


def test_the_validation_refuses_broken_spark_applications():
    (app,) = [o for o in rendered_objects(COMBINATIONS[0]) if o["kind"] == "SparkApplication"]
    unknown = copy.deepcopy(app)
    unknown["spec"]["executor"]["replicas"] = 2  # the field is `instances`
    wrong_type = copy.deepcopy(app)
    wrong_type["spec"]["executor"]["instances"] = "2"
    no_driver = copy.deepcopy(app)
    del no_driver["spec"]["driver"]
    bad_mount = copy.deepcopy(app)
    bad_mount["spec"]["driver"]["volumeMounts"][0]["readOnly"] = "yes"
    unknown_kind = {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApp",
        "metadata": {"name": "x"},
    }
    status, report = validate_spark([unknown, wrong_type, no_driver, bad_mount, unknown_kind])
    assert status == 1
    errors = [entry["errors"] for entry in report]
    assert errors[0] == ["/spec/executor/replicas is not a known field"]
    assert any("instances" in e and "integer" in e for e in errors[1]), errors[1]
    assert any("driver" in e for e in errors[2]), errors[2]
    assert any("readOnly" in e or "read_only" in e for e in errors[3]), errors[3]
    assert errors[4] == ["no schema for apiVersion sparkoperator.k8s.io/v1beta2 kind SparkApp"]

"""The Kubernetes manifests render cleanly, validate against the API schemas, pass checkov, and
hold the project's security and naming rules, all without a cluster.

kubernetes-validate and checkov come from .tools/venv (`make tools`); without them these tests
fail and say so.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from model import signing
from tests.fixtures.data import CHECKOUT_DIR
from tests.support.manifests import (
    DEPLOYABLE,
    KUSTOMIZATIONS,
    MANIFESTS,
    containers,
    find,
    image_tag,
    load_objects,
    newest_kubernetes_version,
    pod_templates,
    render,
    rendered_objects,
    run_tool,
    selects,
    tool,
)

NAMESPACE = "gender-classifier"
UID = 10001
IMAGES = {"gender-api", "gender-jobs", "gender-mlflow"}
# Third-party images of the monitoring components, each pinned by digest.
MONITORING_IMAGES = {"prometheus", "pushgateway"}
# The only pod that runs with API rights: Prometheus' discovery of the pods it scrapes.
DISCOVERY_ACCOUNT = "gender-prometheus"
PLAIN_MONITORING = "manifests/tests/minikube-with-monitoring"
DISCOVERY_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
STABLE_SELECTOR_KEYS = {f"app.kubernetes.io/{key}" for key in ("name", "component", "part-of")}
REQUIRED_LABELS = {
    f"app.kubernetes.io/{key}" for key in ("name", "component", "part-of", "version", "managed-by")
}
# Kinds that live outside any namespace (the cloud overlay ships its StorageClass).
CLUSTER_SCOPED = {"Namespace", "StorageClass"}
DEPRECATED_FIELDS = {"commonLabels", "patchesStrategicMerge", "patchesJson6902", "vars", "bases"}
MLFLOW_HOSTS = [
    f"mlflow{suffix}{port}"
    for suffix in ("", ".gender-classifier", ".gender-classifier.svc", ".gender-classifier.svc.cluster.local")
    for port in ("", ":5000")
]
# A pod that breaks the restricted profile and an object with an unknown field: the tools must object.
BAD_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "bad", "namespace": NAMESPACE},
    "spec": {"containers": [{"name": "c", "image": "x:latest", "securityContext": {"privileged": True}}]},
}
PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
UNKNOWN_FIELD = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "colour": "red"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {k: rendered_objects(k) for k in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def rendered_files(rendered, tmp_path_factory) -> dict[str, Path]:
    """Each rendering in a file; the deployable ones together under one folder, for checkov."""
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for kustomization, objects in rendered.items():
        group = "deployable" if kustomization in DEPLOYABLE else "other"
        path = folder / group / (kustomization.replace("/", "_").strip("._") or "root") / "all.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump_all(objects))
        files[kustomization] = path
    return files


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_renders_without_warnings(kustomization):
    output, warnings = render(kustomization)
    assert warnings == ""
    assert load_objects(output)


def test_kustomizations_use_only_current_fields():
    files = [CHECKOUT_DIR / "kustomization.yaml", *MANIFESTS.rglob("kustomization.yaml")]
    for path in files:
        used = DEPRECATED_FIELDS & set(yaml.safe_load(path.read_text()))
        assert not used, f"{path.relative_to(CHECKOUT_DIR)} uses deprecated fields {used}"


@pytest.mark.parametrize("version", ["1.30.0", "newest"])
def test_every_object_validates_strictly(rendered_files, version, tmp_path):
    version = newest_kubernetes_version() if version == "newest" else version
    validate = [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, "--quiet"]
    result = run_tool([*validate, *map(str, rendered_files.values())])
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.yaml"  # the same call rejects what it should
    bad.write_text(yaml.safe_dump(UNKNOWN_FIELD))
    assert run_tool([*validate, str(bad)]).returncode != 0


def checkov_results(folder: Path) -> dict:
    # --skip-download: no calls to Prisma Cloud for guidelines (offline, and nothing leaves the machine).
    result = run_tool(
        [
            tool("checkov"),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ]
    )
    assert result.returncode in (0, 1), result.stderr  # 1: failed checks, reported below
    report = json.loads(result.stdout)
    return (report[0] if isinstance(report, list) else report)["results"]


def test_checkov_passes_every_deployable_combination(rendered_files):
    results = checkov_results(rendered_files["."].parent.parent)
    failed = [f"{c['check_id']} {c['resource']} in {c['file_path']}" for c in results["failed_checks"]]
    assert not failed, "checkov failed:\n" + "\n".join(failed)
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"]["suppress_comment"]
        assert reason not in ("", "No comment provided"), f"{skipped['check_id']} skipped without a reason"
    checked = {c["file_path"].split("/")[1] for c in results["passed_checks"]}
    assert len(checked) == len(DEPLOYABLE), checked


def test_checkov_flags_a_bad_pod(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(BAD_POD))
    failed = {c["check_id"] for c in checkov_results(tmp_path)["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= failed  # privileged container, image tag latest


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_names_namespace_and_labels(rendered, kustomization):
    for obj in rendered[kustomization]:
        meta, kind = obj["metadata"], obj["kind"]
        where = f"{kind}/{meta['name']}"
        assert meta["name"].startswith("gender-") or (kind, meta["name"]) == ("Service", "mlflow"), where
        assert kind != "Secret", f"{where}: secrets are created by hand, never committed"
        if kind not in CLUSTER_SCOPED:
            assert meta.get("namespace") == NAMESPACE, where
            assert set(meta.get("labels", {})) >= REQUIRED_LABELS, where
        assert meta["labels"]["app.kubernetes.io/part-of"] == NAMESPACE, where
    namespace = find(rendered[kustomization], "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_every_pod_meets_the_restricted_profile(rendered, kustomization):
    bound = {s["name"] for o in rendered[kustomization] if o["kind"] == "RoleBinding" for s in o["subjects"]}
    bound.discard(DISCOVERY_ACCOUNT)  # read-only discovery (test_prometheus_may_only_read_pods)
    for owner, template in pod_templates(rendered[kustomization]):
        spec = template["spec"]
        assert set(template["metadata"]["labels"]) >= REQUIRED_LABELS, owner
        assert spec["automountServiceAccountToken"] is False, owner
        assert spec.get("serviceAccountName", "default") not in bound, f"{owner} runs with API rights"
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, owner
        assert (pod_security["runAsUser"], pod_security["runAsGroup"], pod_security["fsGroup"]) == (UID,) * 3
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in containers(spec):
            where = f"{owner} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert not security.get("privileged"), where
            assert container["command"], f"{where}: the command must be explicit"
            assert image_tag(container["image"]) not in ("", "latest"), where
            name = container["image"].rsplit("/", 1)[-1].split(":")[0]
            assert name in IMAGES or (name in MONITORING_IMAGES and PINNED.search(container["image"])), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp must be an emptyDir"


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_selectors_are_stable_and_match_pods(rendered, kustomization):
    objects = rendered[kustomization]
    pods = [template["metadata"]["labels"] for _, template in pod_templates(objects)]
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "Service":
            selector = {"matchLabels": spec["selector"]}
        elif kind in ("Deployment", "PodDisruptionBudget"):
            selector = spec["selector"]
        else:
            continue
        assert set(selector["matchLabels"]) <= STABLE_SELECTOR_KEYS, obj["metadata"]["name"]
        assert any(selects(selector, labels) for labels in pods), (
            f"{kind}/{obj['metadata']['name']} selects no pod"
        )
        if kind == "Deployment":
            assert selects(selector, spec["template"]["metadata"]["labels"])


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_network_policies_select_real_pods(rendered, kustomization):
    objects = rendered[kustomization]
    pods = {
        template["metadata"]["labels"]["app.kubernetes.io/component"]: template["metadata"]["labels"]
        for _, template in pod_templates(objects)
    }

    def components(selector: dict) -> set[str]:
        return {component for component, labels in pods.items() if selects(selector, labels)}

    deny = find(objects, "NetworkPolicy", "gender-default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    api = find(objects, "NetworkPolicy", "gender-api-ingress")["spec"]
    assert components(api["podSelector"]) == {"api"}
    assert [port["port"] for rule in api["ingress"] for port in rule["ports"]] == [5000]
    mlflow = find(objects, "NetworkPolicy", "gender-mlflow-ingress")["spec"]
    assert components(mlflow["podSelector"]) == {"mlflow"}
    (rule,) = mlflow["ingress"]
    assert set().union(*(components(peer["podSelector"]) for peer in rule["from"])) == {"trainer", "batch"}
    assert [port["port"] for port in rule["ports"]] == [5000]
    jobs = find(objects, "NetworkPolicy", "gender-jobs-egress")["spec"]
    assert components(jobs["podSelector"]) == {"trainer", "batch"}
    dns, to_mlflow = jobs["egress"]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert components(to_mlflow["to"][0]["podSelector"]) == {"mlflow"}


def test_the_cluster_cli_role_is_bound_to_its_service_account_only(rendered):
    # What the Role grants is checked against the calls the CLI makes, in tests/code/test_cluster.py.
    objects = rendered["."]
    role = find(objects, "Role", "gender-cluster-cli")
    account = find(objects, "ServiceAccount", "gender-cluster-cli")
    binding = find(objects, "RoleBinding", "gender-cluster-cli")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]


def test_prometheus_may_only_read_pods(rendered):
    objects = rendered[PLAIN_MONITORING]
    account = {"kind": "ServiceAccount", "name": DISCOVERY_ACCOUNT, "namespace": NAMESPACE}
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding" and account in o["subjects"]]
    assert binding["subjects"] == [account]
    assert binding["roleRef"]["kind"] == "Role"
    assert find(objects, "Role", binding["roleRef"]["name"])["rules"] == DISCOVERY_RULES
    assert find(objects, "ServiceAccount", DISCOVERY_ACCOUNT)["automountServiceAccountToken"] is False
    users = [o for o, t in pod_templates(objects) if t["spec"].get("serviceAccountName") == DISCOVERY_ACCOUNT]
    assert users == ["Deployment/gender-prometheus"]


def test_jobs_are_bounded_and_never_overlap(rendered):
    objects = rendered["."]
    for name in ("gender-retrain", "gender-batch-predict"):
        spec = find(objects, "CronJob", name)["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", name
        for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            assert spec[field] >= 0, f"{name}.{field}"
        for field in ("activeDeadlineSeconds", "backoffLimit"):
            assert spec["jobTemplate"]["spec"][field] > 0, f"{name}.{field}"


def test_probes_ports_and_graceful_shutdown(rendered):
    objects = rendered["."]
    api = find(objects, "Deployment", "gender-api")["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 5000}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["port"] == "http"
    conf = (CHECKOUT_DIR / "service" / "gunicorn_conf.py").read_text()
    graceful = int(re.search(r"^GRACEFUL_TIMEOUT_S = (\d+)", conf, re.MULTILINE).group(1))
    assert (
        api["terminationGracePeriodSeconds"]
        > container["lifecycle"]["preStop"]["sleep"]["seconds"] + graceful
    )
    service = find(objects, "Service", "gender-api")["spec"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    mlflow = find(objects, "Deployment", "gender-mlflow")["spec"]
    assert mlflow["replicas"] == 1
    assert mlflow["strategy"] == {"type": "Recreate"}
    (server,) = mlflow["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    (hosts,) = [arg.split("=", 1)[1] for arg in server["args"] if arg.startswith("--allowed-hosts=")]
    assert set(MLFLOW_HOSTS) | {"localhost", "localhost:*"} <= set(hosts.split(","))
    assert find(objects, "Service", "mlflow")["spec"]["ports"][0]["port"] == 5000


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_env_comes_from_the_config_and_dirs_are_mounted(rendered, kustomization):
    objects = rendered[kustomization]
    (config,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gender-config-")
    ]
    for owner, template in pod_templates(objects):
        for container in containers(template["spec"]):
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref is None:
                    continue
                assert ref["name"] == config["metadata"]["name"], f"{owner}: {env['name']}"
                value = config["data"][ref["key"]]
                if (
                    env["name"].endswith("_DIR") and env["name"] != "GENDER_SAMPLE_DATA_DIR"
                ):  # sample is in the image
                    assert value in mounts, f"{owner}: {env['name']}={value} is not a mount"


def test_minikube_overlay_runs_local_images(rendered):
    objects = rendered["manifests/overlays/minikube"]
    assert find(objects, "Deployment", "gender-api")["spec"]["replicas"] == 1
    for owner, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            assert image_tag(container["image"]) == "dev", owner
            assert container["imagePullPolicy"] == "IfNotPresent", owner
    assert {o["spec"]["storageClassName"] for o in objects if o["kind"] == "PersistentVolumeClaim"} == {
        "standard"
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_an_autoscaled_deployment_leaves_its_replicas_to_the_autoscaler(rendered, kustomization):
    # A count in the manifest resets the autoscaled Deployment to it on every `kubectl apply`.
    objects = rendered[kustomization]
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        scaled = find(objects, target["kind"], target["name"])
        assert "replicas" not in scaled["spec"], f"{target['kind']}/{target['name']} sets replicas"


def test_cloud_overlay_scales_and_uses_external_stores(rendered):
    objects = rendered["manifests/overlays/cloud"]
    api = find(objects, "Deployment", "gender-api")["spec"]
    hpa = find(objects, "HorizontalPodAutoscaler", "gender-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == (
        "Deployment",
        "gender-api",
    )
    assert {c["topologyKey"] for c in api["template"]["spec"]["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for owner, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            assert "/" in container["image"], f"{owner}: a registry image"
            assert container["imagePullPolicy"] == "Always", owner
    assert find(objects, "PersistentVolumeClaim", "gender-model-store")["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    assert not [o for o in objects if o["metadata"]["name"] == "gender-mlflow-store"]
    mlflow = find(objects, "Deployment", "gender-mlflow")["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"] for v in mlflow["volumes"] if "secret" in v}
    secrets |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in mlflow["containers"][0]["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {"gender-mlflow-db", "gender-mlflow-s3"}
    env = {e["name"]: e for e in mlflow["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"] == {
        "name": "MLFLOW_BACKEND_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "gender-mlflow-db", "key": "uri"}},
    }
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"].startswith("s3://")


def key_volumes(spec: dict) -> tuple[set[str], set[str]]:
    """The names of the pod's volumes holding (the signing key Secret, the trusted keys ConfigMap)."""
    secret = {
        v["name"]
        for v in spec.get("volumes", [])
        if v.get("secret", {}).get("secretName") == signing.SIGNING_KEY_SECRET
    }
    trusted = {
        v["name"]
        for v in spec.get("volumes", [])
        if v.get("configMap", {}).get("name") == signing.TRUSTED_KEYS_CONFIGMAP
    }
    return secret, trusted


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_only_trainers_hold_the_signing_key_and_every_reader_the_trusted_keys(rendered, kustomization):
    objects = rendered[kustomization]
    trainers = 0
    for owner, template in pod_templates(objects):
        component = template["metadata"]["labels"].get("app.kubernetes.io/component")
        secret, trusted = key_volumes(template["spec"])
        assert bool(secret) is (component == "trainer"), f"{owner} ({component}) and the signing key"
        assert bool(trusted) is (component in ("api", "batch", "trainer")), f"{owner} and the trusted keys"
        trainers += component == "trainer"
        for volume in template["spec"].get("volumes", []):
            if volume["name"] in secret | trusted:  # the pod starts without them and says what is missing
                assert (volume.get("secret") or volume["configMap"])["optional"] is True, owner
        for container in containers(template["spec"]):
            mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
            for name in secret | trusted:
                assert mounts[name]["readOnly"] is True, f"{owner}: {name}"
    assert trainers >= 1

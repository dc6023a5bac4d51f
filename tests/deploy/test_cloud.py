"""What a real cluster needs from the manifests, checked without one: volumes that pods on several
nodes mount, writable for UID 10001 on storage that ignores fsGroup; DNS egress to every resolver a
cluster may name; image pull secrets through the pods' ServiceAccount, each Secret documented;
Pod Security pinned to the oldest supported Kubernetes minor; and MLflow's schema upgrade before
its server, run here for real: on SQLite always, on a throwaway PostgreSQL (two upgrades at once)
where its server binaries and psycopg2 are installed.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
import yaml

from tests.support.manifests import (
    DEPLOYABLE,
    MANIFESTS,
    containers,
    find,
    kubectl,
    load_objects,
    pod_templates,
    rendered_objects,
    run_tool,
    selects,
    tool,
)
from tests.support.polling import wait_until

UID = 10001
CLOUD = [k for k in DEPLOYABLE if "cloud" in k.rsplit("/", 1)[-1]]
CLOUD_OVERLAY = MANIFESTS / "overlays" / "cloud"
STORAGE_CLASS_FILES = sorted(p.name for p in (CLOUD_OVERLAY / "storage-classes").glob("*.yaml"))
# The oldest Kubernetes minor the manifests support (the API's preStop `sleep` handler is on by default).
OLDEST_MINOR = (1, 30)
# Every resolver a pod's /etc/resolv.conf may name: kube-dns pods, NodeLocal DNSCache, GKE's metadata server.
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
LINK_LOCAL_RESOLVERS = {"169.254.20.10/32", "169.254.169.254/32"}
UPGRADE_SCRIPT = MANIFESTS / "base" / "mlflow_db_upgrade.py"
UPGRADE_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {k: rendered_objects(k) for k in DEPLOYABLE}


def pods_of(objects: list[dict]) -> dict[str, dict]:
    return {owner: template for owner, template in pod_templates(objects)}


def claims_mounted(spec: dict) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }


# --- Volumes -------------------------------------------------------------------------------------


def has_several_pods(objects: list[dict], owner: str) -> bool:
    """A workload whose pods may run at once, on different nodes: autoscaled, or replicas > 1."""
    kind, name = owner.split("/")
    autoscaled = {
        (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
        for h in objects
        if h["kind"] == "HorizontalPodAutoscaler"
    }
    return (kind, name) in autoscaled or find(objects, kind, name)["spec"].get("replicas", 1) > 1


@pytest.mark.parametrize("kustomization", CLOUD)
def test_a_volume_pods_on_several_nodes_mount_is_read_write_many(rendered, kustomization):
    objects = rendered[kustomization]
    mounted_by: dict[str, set[str]] = {}
    for owner, template in pods_of(objects).items():
        for claim in claims_mounted(template["spec"]):
            mounted_by.setdefault(claim, set()).add(owner)
    for claim, owners in mounted_by.items():
        if len(owners) > 1 or any(has_several_pods(objects, owner) for owner in owners):
            modes = find(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"]
            assert modes == ["ReadWriteMany"], f"{claim} is mounted by {sorted(owners)} but is {modes}"


def efs_problems(storage_class: dict, fs_groups: set[int]) -> list[str]:
    """An access point per claim, created for and enforcing UID/GID 10001."""
    parameters = storage_class["parameters"]
    problems = []
    if parameters.get("provisioningMode") != "efs-ap":
        problems.append("provisioningMode is not efs-ap (access points)")
    if not parameters.get("uid") == parameters.get("gid") == str(UID):
        problems.append(f"uid/gid are not {UID}")
    if int(parameters.get("directoryPerms", "0"), 8) & 0o700 != 0o700:
        problems.append("directoryPerms do not let the owner write")
    return problems


def azure_files_problems(storage_class: dict, fs_groups: set[int]) -> list[str]:
    """SMB gives every file the mount's owner and modes; the model store needs symlinks and the
    writer lock needs server-side byte-range locks."""
    options = dict(o.split("=", 1) if "=" in o else (o, "") for o in storage_class.get("mountOptions", []))
    problems = []
    if not options.get("uid") == options.get("gid") == str(UID):
        problems.append(f"uid/gid are not {UID}")
    if int(options.get("dir_mode", "0"), 8) & 0o700 != 0o700:
        problems.append("dir_mode does not let the owner write")
    if int(options.get("file_mode", "0"), 8) & 0o600 != 0o600:
        problems.append("file_mode does not let the owner write")
    if "mfsymlinks" not in options:
        problems.append("no mfsymlinks: the model store's `current` symlink cannot be stored")
    if "nobrl" in options:
        problems.append("nobrl keeps the writer lock on one node")
    return problems


def nfs_csi_problems(storage_class: dict, fs_groups: set[int]) -> list[str]:
    """csi-driver-nfs declares fsGroupPolicy File: kubelet gives the volume to the pods' fsGroup."""
    problems = [] if fs_groups == {UID} else [f"the pods' fsGroups are {fs_groups}, not {UID}"]
    if "nolock" in storage_class.get("mountOptions", []):
        problems.append("nolock keeps the writer lock on one node")
    return problems


WRITABLE_FOR_UID = {
    "efs.csi.aws.com": efs_problems,
    "file.csi.azure.com": azure_files_problems,
    "nfs.csi.k8s.io": nfs_csi_problems,
}


def render_cloud_with(storage_class_file: str, tmp_path: Path) -> list[dict]:
    """The cloud overlay rendered from a copy of manifests/ whose overlay names another storage class."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    kustomization = tmp_path / "manifests" / "overlays" / "cloud" / "kustomization.yaml"
    text = kustomization.read_text()
    (shipped,) = re.findall(r"^  - (storage-classes/\S+\.yaml)$", text, re.MULTILINE)
    kustomization.write_text(text.replace(shipped, f"storage-classes/{storage_class_file}"))
    result = subprocess.run(
        [kubectl(), "kustomize", str(kustomization.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return load_objects(result.stdout)


@pytest.mark.parametrize("storage_class_file", STORAGE_CLASS_FILES)
def test_each_storage_class_makes_both_volumes_writable_for_the_trainer(storage_class_file, tmp_path):
    objects = render_cloud_with(storage_class_file, tmp_path)
    (storage_class,) = [o for o in objects if o["kind"] == "StorageClass"]
    class_name = storage_class["metadata"]["name"]
    claims = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    assert {name: spec["storageClassName"] for name, spec in claims.items()} == {
        "gender-model-store": class_name,
        "gender-data": class_name,
    }
    assert storage_class["reclaimPolicy"] == "Retain", "deleting a claim must not delete models or data sets"
    fs_groups = {t["spec"]["securityContext"].get("fsGroup") for t in pods_of(objects).values()}
    rule = WRITABLE_FOR_UID.get(storage_class["provisioner"])
    assert rule is not None, (
        f"{storage_class['provisioner']}: no rule says how UID {UID} may write its volumes"
    )
    assert rule(storage_class, fs_groups) == [], storage_class_file
    schema_file = tmp_path / "storage-class.yaml"
    schema_file.write_text(yaml.safe_dump(storage_class))
    version = "{}.{}.0".format(*OLDEST_MINOR)
    validation = run_tool(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, str(schema_file)]
    )
    assert validation.returncode == 0, validation.stdout + validation.stderr


def test_the_storage_rules_refuse_a_class_that_leaves_the_share_to_root():
    efs = {
        "provisioner": "efs.csi.aws.com",
        "parameters": {"provisioningMode": "efs-ap", "directoryPerms": "700"},
    }
    azure = {
        "provisioner": "file.csi.azure.com",
        "mountOptions": ["dir_mode=0777", "file_mode=0777", "nobrl"],
    }
    assert efs_problems(efs, {UID}) == [f"uid/gid are not {UID}"]
    assert azure_files_problems(azure, {UID}) == [
        f"uid/gid are not {UID}",
        "no mfsymlinks: the model store's `current` symlink cannot be stored",
        "nobrl keeps the writer lock on one node",
    ]
    assert len(nfs_csi_problems({"mountOptions": ["nolock"]}, {None})) == 2


# --- DNS -----------------------------------------------------------------------------------------


def dns_rules(policy: dict) -> list[dict]:
    return [
        r for r in policy["spec"].get("egress", []) if any(p.get("port") == 53 for p in r.get("ports", []))
    ]


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_every_pod_let_out_reaches_every_resolver(rendered, kustomization):
    objects = rendered[kustomization]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for policy in policies:
        for rule in dns_rules(policy):
            name = policy["metadata"]["name"]
            assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}, name
            assert KUBE_DNS in rule["to"], f"{name}: no kube-dns pods"
            assert {
                peer["ipBlock"]["cidr"] for peer in rule["to"] if "ipBlock" in peer
            } >= LINK_LOCAL_RESOLVERS, name
    for owner, template in pods_of(objects).items():
        labels = template["metadata"]["labels"]
        egress = [
            p for p in policies if p["spec"].get("egress") and selects(p["spec"]["podSelector"], labels)
        ]
        if egress:
            assert any(dns_rules(p) for p in egress), f"{owner} may send traffic but resolve no name"


# --- Registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", CLOUD)
def test_cloud_pods_pull_with_the_registry_secret_of_their_account(rendered, kustomization):
    objects = rendered[kustomization]
    for owner, template in pods_of(objects).items():
        spec = template["spec"]
        account = find(objects, "ServiceAccount", spec.get("serviceAccountName", "default"))
        assert {"name": "gender-registry"} in account.get("imagePullSecrets", []), owner
        assert account["automountServiceAccountToken"] is False, owner
        assert spec["automountServiceAccountToken"] is False, owner


def secrets_referenced(objects: list[dict]) -> set[str]:
    names = {
        s["name"] for o in objects if o["kind"] == "ServiceAccount" for s in o.get("imagePullSecrets", [])
    }
    for _, template in pod_templates(objects):
        spec = template["spec"]
        names |= {s["name"] for s in spec.get("imagePullSecrets", [])}
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        names |= {
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in containers(spec)
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
    return names


def test_every_secret_the_cloud_overlay_needs_has_its_command_in_the_readme(rendered):
    readme = (MANIFESTS / "README.md").read_text()
    documented = set(
        re.findall(r"kubectl -n gender-classifier create secret (?:generic|docker-registry) (\S+)", readme)
    )
    needed = set().union(*(secrets_referenced(rendered[k]) for k in CLOUD))
    assert "gender-registry" in needed
    assert needed <= documented, (
        f"no creation command in manifests/README.md for {sorted(needed - documented)}"
    )


# --- Pod Security --------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_pod_security_is_pinned_to_the_oldest_supported_minor(rendered, kustomization):
    labels = find(rendered[kustomization], "Namespace", "gender-classifier")["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", mode
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v{}.{}".format(*OLDEST_MINOR), mode


# --- MLflow's schema upgrade: the manifests ------------------------------------------------------


@pytest.mark.parametrize("overlay", ["manifests/overlays/minikube", "manifests/overlays/cloud"])
def test_mlflow_upgrades_its_database_before_the_server_starts(rendered, overlay):
    objects = rendered[overlay]
    deployment = find(objects, "Deployment", "gender-mlflow")
    spec = deployment["spec"]["template"]["spec"]
    (upgrade,) = spec["initContainers"]
    (server,) = spec["containers"]
    for field in ("image", "imagePullPolicy"):
        assert upgrade[field] == server[field], f"the upgrade must run the server's MLflow ({field})"
    database = [e for e in server["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"]
    assert [e for e in upgrade["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"] == database
    interpreter, script = upgrade["command"]
    assert interpreter == "python"
    (mount,) = [m for m in upgrade["volumeMounts"] if Path(m["mountPath"]) == Path(script).parent]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    (configmap,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == volume["configMap"]["name"]
    ]
    assert configmap["data"][Path(script).name] == UPGRADE_SCRIPT.read_text(), (
        "the pod runs the tested script"
    )
    if "value" in database[0]:  # SQLite: the file on the server's volume, one pod at a time
        path = Path(database[0]["value"].removeprefix("sqlite:///"))
        (on,) = [m for m in server["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        assert on in upgrade["volumeMounts"], f"the upgrade does not see {path}"
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}


# --- MLflow's schema upgrade: the script, run ----------------------------------------------------


def mlflow_schema_head() -> str:
    """The newest schema revision of the installed MLflow, from its own migration scripts."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations")).get_current_head()


def schema_revision(url: str) -> str | None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                return None
            return connection.scalar(sqlalchemy.text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def start_upgrade(url: str | None, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_BACKEND_STORE_URI"}
    if url is not None:
        env["MLFLOW_BACKEND_STORE_URI"] = url
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, str(UPGRADE_SCRIPT)], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def finish(process: subprocess.Popen, log: Path) -> int:
    try:
        return process.wait(timeout=UPGRADE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the upgrade did not end within {UPGRADE_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.mark.slow
def test_the_upgrade_brings_a_new_sqlite_database_to_the_schema_of_its_mlflow_and_can_run_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    for attempt in ("first", "again"):
        log = tmp_path / f"{attempt}.log"
        assert finish(start_upgrade(url, log), log) == 0, log.read_text()
        assert schema_revision(url) == mlflow_schema_head(), attempt


@pytest.mark.slow
def test_the_upgrade_without_a_database_url_says_so(tmp_path):
    log = tmp_path / "upgrade.log"
    assert finish(start_upgrade(None, log), log) == 2
    assert "MLFLOW_BACKEND_STORE_URI is not set" in log.read_text()


def upgrade_lock_key() -> int:
    """The script's advisory lock key (loading the file imports MLflow's CLI, as the pod does)."""
    spec = importlib.util.spec_from_file_location("mlflow_db_upgrade", UPGRADE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LOCK_KEY


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # MLflow's, on import
def test_an_upgrade_waits_while_another_holds_the_lock_then_completes(postgres, tmp_path):
    url = postgres.new_database()
    key = {"key": upgrade_lock_key()}
    holder = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    log = tmp_path / "upgrade.log"
    with holder.connect() as other_replica:
        other_replica.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
        process = start_upgrade(url, log)
        wait_until(
            lambda: "waiting for it" in log.read_text() or process.poll() is not None,
            UPGRADE_TIMEOUT_S,
            0.2,
            lambda: f"the upgrade never waited:\n{log.read_text()}",
        )
        assert process.poll() is None, (
            f"the upgrade ended while another replica held the lock:\n{log.read_text()}"
        )
        assert schema_revision(url) is None, "the upgrade changed the schema without the lock"
        other_replica.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    holder.dispose()
    assert finish(process, log) == 0, log.read_text()
    assert schema_revision(url) == mlflow_schema_head()


@pytest.mark.slow
def test_two_replicas_upgrading_one_new_database_at_once_both_succeed(postgres, tmp_path):
    url = postgres.new_database()
    logs = [tmp_path / "replica-1.log", tmp_path / "replica-2.log"]
    processes = [start_upgrade(url, log) for log in logs]
    for process, log in zip(processes, logs, strict=True):
        assert finish(process, log) == 0, log.read_text()
    assert schema_revision(url) == mlflow_schema_head()

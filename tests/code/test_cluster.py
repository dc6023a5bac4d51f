"""The cluster CLI against a stand-in API server reached through a real kubeconfig."""

import base64
import contextlib
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import config
from ruamel.yaml import YAML

from jobs.cluster import main
from jobs.cluster_api import timestamped_name
from model.exit_codes import ExitCode
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import session_key, session_key_file, session_public_pem
from tests.support.kube_stub import (
    MULTI_ATTACH,
    UNSCHEDULABLE,
    KubeStub,
    Permission,
    cli_role,
    role_permissions,
    rollout,
)
from tests.support.manifests import rendered_objects

NAMESPACE = "gender-classifier"
FAST = ["--poll-interval", "0.05"]
MANUAL_NAME = re.compile(r"gender-retrain-manual-\d{8}-\d{6}-[0-9a-f]{4}")
BOOTSTRAP_NAME = re.compile(r"gender-bootstrap-\d{8}-\d{6}-[0-9a-f]{4}")
SKIP_IF_PUBLISHED = {"name": "GENDER_SKIP_IF_PUBLISHED", "value": "true"}


@pytest.fixture
def stub():
    with KubeStub(NAMESPACE) as server:
        yield server


@pytest.fixture
def kubeconfig(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("GENDER_NAMESPACE", raising=False)
    return stub.write_kubeconfig(tmp_path / "kubeconfig")


def run_cli(kubeconfig: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBERNETES_SERVICE_HOST", "GENDER_NAMESPACE")
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.cluster", "--kubeconfig", str(kubeconfig), *argv],
        cwd=CHECKOUT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli(kubeconfig: Path, *argv: str) -> int:
    return main(["--kubeconfig", str(kubeconfig), *argv])


def rendered_retrain_cronjob() -> dict:
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered_objects("manifests/base")}
    return objects["CronJob", "gender-retrain"]


def test_run_training_creates_the_job_kubectl_would_and_streams_its_logs(stub, kubeconfig):
    result = run_cli(kubeconfig, "run-training", "--timeout", "20", *FAST)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"{line}\n" for line in stub.log_lines)
    assert "completed" in result.stderr
    [job] = stub.created
    cronjob = stub.cronjobs["gender-retrain"]
    template = cronjob["spec"]["jobTemplate"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert MANUAL_NAME.fullmatch(job["metadata"]["name"])
    assert (
        job["metadata"]["annotations"]
        == {"cronjob.kubernetes.io/instantiate": "manual"} | template["metadata"]["annotations"]
    )
    assert job["metadata"]["labels"] == template["metadata"]["labels"]
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "gender-retrain",
            "uid": cronjob["metadata"]["uid"],
            "controller": True,
        }
    ]
    assert job["spec"] == template["spec"]
    # One streamed request for the whole log (the stub serves follow=true only), none per poll.
    log = f"/api/v1/namespaces/{NAMESPACE}/pods/{job['metadata']['name']}-x7k2p/log"
    assert stub.requests.count(("GET", log)) == 1
    assert "is pending" not in result.stderr  # ContainerCreating is no reason to report


def test_run_training_copies_fields_this_client_does_not_know(stub, kubeconfig):
    template = stub.cronjobs["gender-retrain"]["spec"]["jobTemplate"]
    template["spec"]["podFailurePolicy"] = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 3, 4]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }
    template["spec"]["fieldOfAFutureRelease"] = {"mode": "Strict"}
    template["spec"]["template"]["spec"]["containers"][0]["futureContainerField"] = [1, 2]

    assert cli(kubeconfig, "run-training", "--timeout", "20", *FAST) == 0

    [job] = stub.created
    assert job["spec"] == template["spec"]


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (
            "ImagePullBackOff",
            'container retrain: ImagePullBackOff: Back-off pulling image "gender-jobs:0.1.0"',
        ),
        ("Unschedulable", f"Unschedulable: {UNSCHEDULABLE}"),
        ("Multi-Attach", f"FailedAttachVolume: {MULTI_ATTACH}"),
    ],
)
def test_run_training_says_once_why_its_pod_is_pending(stub, kubeconfig, capsys, cause, reason):
    stub.pending_cause = cause

    exit_code = cli(kubeconfig, "run-training", "--job-name", "retrain-stuck", "--timeout", "0.5", *FAST)

    assert exit_code == ExitCode.TIMEOUT
    reports = [line for line in capsys.readouterr().err.splitlines() if "is pending" in line]
    assert reports == [f"cluster: pod retrain-stuck-x7k2p is pending: {reason}"]


def test_run_training_refuses_while_a_run_of_a_forbid_cronjob_is_active(stub, kubeconfig, capsys):
    stub.job_outcome = "hang"
    first = run_cli(kubeconfig, "run-training", "--job-name", "retrain-first", "--timeout", "0.3", *FAST)
    assert first.returncode == ExitCode.TIMEOUT

    assert cli(kubeconfig, "run-training", *FAST) == ExitCode.WRITER_BUSY
    assert cli(kubeconfig, "bootstrap", *FAST) == ExitCode.WRITER_BUSY

    err = capsys.readouterr().err
    assert (
        "error: CronJob gender-retrain forbids concurrent runs (concurrencyPolicy: Forbid) "
        "and its Job retrain-first is still running" in err
    )
    assert [job["metadata"]["name"] for job in stub.created] == ["retrain-first"]
    stub.cronjobs["gender-retrain"]["spec"]["concurrencyPolicy"] = "Allow"
    assert (
        cli(kubeconfig, "run-training", "--job-name", "retrain-second", "--timeout", "0.3")
        == ExitCode.TIMEOUT
    )
    assert [job["metadata"]["name"] for job in stub.created] == ["retrain-first", "retrain-second"]


def test_the_default_timeout_outlasts_the_jobs_own_deadline(stub, kubeconfig, capsys):
    cronjob = rendered_retrain_cronjob()
    stub.add_cronjob(cronjob)
    job_spec = cronjob["spec"]["jobTemplate"]["spec"]
    grace = job_spec["template"]["spec"].get("terminationGracePeriodSeconds", 30)  # Kubernetes' default

    assert cli(kubeconfig, "run-training", *FAST) == 0

    waited = float(re.search(r"waiting up to (\S+)s", capsys.readouterr().err).group(1))
    assert waited > job_spec["activeDeadlineSeconds"] + grace


def test_bootstrap_runs_the_retrain_template_set_to_skip_a_published_model(stub, kubeconfig, capsys):
    template = stub.cronjobs["gender-retrain"]["spec"]["jobTemplate"]
    env = template["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "GENDER_SKIP_IF_PUBLISHED", "value": "false"})

    assert cli(kubeconfig, "bootstrap", "--timeout", "20", *FAST) == 0
    # Again: harmless, the second Job finds the model and exits at once.
    assert cli(kubeconfig, "bootstrap", "--timeout", "20", *FAST) == 0

    expected = copy.deepcopy(template["spec"])
    expected["template"]["spec"]["containers"][0]["env"] = [*env[:-1], SKIP_IF_PUBLISHED]
    assert len(stub.created) == 2
    for job in stub.created:
        assert BOOTSTRAP_NAME.fullmatch(job["metadata"]["name"])
        assert job["metadata"]["ownerReferences"][0]["name"] == "gender-retrain"
        assert job["spec"] == expected
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in stub.log_lines) * 2


def test_bootstrap_names_a_template_without_the_retrain_container(stub, kubeconfig, capsys):
    template = stub.cronjobs["gender-retrain"]["spec"]["jobTemplate"]
    template["spec"]["template"]["spec"]["containers"][0]["name"] = "trainer"

    assert cli(kubeconfig, "bootstrap", *FAST) == ExitCode.CLUSTER
    assert "the job template has no container 'retrain' (it has trainer)" in capsys.readouterr().err
    assert stub.created == []


def test_a_call_the_role_does_not_grant_is_named_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GENDER_NAMESPACE", raising=False)
    without_list = role_permissions(cli_role()) - {Permission("batch", "jobs", "list")}
    with KubeStub(NAMESPACE, granted=without_list) as stub:
        assert cli(stub.write_kubeconfig(tmp_path / "kubeconfig"), "run-training", *FAST) == ExitCode.CLUSTER

    assert (
        "listing the Jobs in namespace gender-classifier failed: HTTP 403 Forbidden: "
        'jobs.batch is forbidden: User "system:serviceaccount:gender-classifier:gender-cluster-cli" '
        'cannot list resource "jobs"' in capsys.readouterr().err
    )
    assert stub.created == []


def test_run_training_exits_failed_when_the_job_fails(stub, kubeconfig, capsys):
    stub.job_outcome = "fail"

    assert cli(kubeconfig, "run-training", "--job-name", "retrain-now", *FAST) == ExitCode.FAILED

    out, err = capsys.readouterr()
    assert out.endswith("published model\n")
    assert "Job retrain-now failed: BackoffLimitExceeded" in err
    assert "failed=1" in err


def test_run_training_exits_timeout_with_the_logs_so_far(stub, kubeconfig):
    stub.job_outcome = "hang"

    result = run_cli(kubeconfig, "run-training", "--job-name", "retrain-hang", "--timeout", "1", *FAST)

    assert result.returncode == ExitCode.TIMEOUT
    assert result.stdout == "loading users.csv\ntraining candidate\n"
    assert "Job retrain-hang did not finish within 1s (active=1, succeeded=0, failed=0)" in result.stderr


def test_run_training_names_a_missing_cronjob(stub, kubeconfig):
    result = run_cli(kubeconfig, "run-training", "--cronjob", "gender-nothing")

    assert result.returncode == ExitCode.CLUSTER
    assert "reading CronJob gender-nothing in namespace gender-classifier failed: HTTP 404" in result.stderr
    assert 'cronjobs.batch "gender-nothing" not found' in result.stderr
    assert "Traceback" not in result.stderr
    assert stub.created == []


def test_run_training_refuses_an_existing_job_name(stub, kubeconfig, capsys):
    assert cli(kubeconfig, "run-training", "--job-name", "retrain-once", "--timeout", "5", *FAST) == 0

    assert cli(kubeconfig, "run-training", "--job-name", "retrain-once", *FAST) == ExitCode.CLUSTER
    assert (
        "creating Job retrain-once in namespace gender-classifier failed: HTTP 409" in capsys.readouterr().err
    )


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """No kubeconfig anywhere and no pod around: an empty HOME, no KUBECONFIG."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "GENDER_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


SOURCES = ("--kubeconfig", "KUBECONFIG", "~/.kube/config", "pod")


@pytest.mark.parametrize("present", [SOURCES[index:] for index in range(len(SOURCES))])
def test_credentials_come_in_kubectls_order_the_pods_last(no_credentials, tmp_path, monkeypatch, present):
    with contextlib.ExitStack() as stack:
        stubs = {source: stack.enter_context(KubeStub(NAMESPACE)) for source in SOURCES}
        for stub in stubs.values():
            stub.deployments["gender-api"] = rollout("gender-api", NAMESPACE)

        def load_incluster_config(client_configuration):  # the pod's service account, without a pod
            client_configuration.host = stubs["pod"].url
            client_configuration.api_key = {"authorization": "Bearer pod-token"}

        # Set in every pod, a Jenkins agent's too: it must not win over a kubeconfig.
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
        monkeypatch.setattr(config, "load_incluster_config", load_incluster_config)
        argv = []
        if "--kubeconfig" in present:
            argv = ["--kubeconfig", str(stubs["--kubeconfig"].write_kubeconfig(tmp_path / "flag"))]
        if "KUBECONFIG" in present:  # a list, as kubectl reads it; a missing file is skipped
            path = stubs["KUBECONFIG"].write_kubeconfig(tmp_path / "env")
            monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}{os.pathsep}{path}")
        if "~/.kube/config" in present:
            (no_credentials / ".kube").mkdir()
            stubs["~/.kube/config"].write_kubeconfig(no_credentials / ".kube" / "config")

        assert main([*argv, "wait-ready", "--timeout", "20", *FAST]) == 0

    called = [source for source, stub in stubs.items() if stub.requests]
    assert called == [present[0]]


def test_a_kubeconfig_without_a_file_is_an_error_not_another_cluster(
    no_credentials, tmp_path, monkeypatch, capsys
):
    (no_credentials / ".kube").mkdir()
    with KubeStub(NAMESPACE) as home_stub:
        home_stub.write_kubeconfig(no_credentials / ".kube" / "config")
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))

        assert main(["wait-ready"]) == ExitCode.CLUSTER

    assert home_stub.requests == []
    err = capsys.readouterr().err
    assert f"cannot load the Kubernetes configuration from the KUBECONFIG {tmp_path / 'absent'}" in err


def test_no_credentials_at_all_are_reported(no_credentials, capsys):
    assert main(["wait-ready"]) == ExitCode.CLUSTER
    assert (
        "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, write ~/.kube/config, "
        "or run in a pod" in capsys.readouterr().err
    )


def test_namespace_comes_from_settings_and_the_flag_overrides_it(stub, kubeconfig, monkeypatch, capsys):
    monkeypatch.setenv("GENDER_NAMESPACE", "staging")
    cli(kubeconfig, "wait-ready", "--timeout", "1", *FAST)
    main(["--kubeconfig", str(kubeconfig), "--namespace", "prod", "wait-ready", "--timeout", "1", *FAST])
    monkeypatch.setenv("GENDER_NAMESPACE", "Not_A_Namespace")

    assert cli(kubeconfig, "wait-ready") == ExitCode.USAGE
    assert "invalid settings: GENDER_NAMESPACE='Not_A_Namespace'" in capsys.readouterr().err
    namespaces = [path.split("/")[5] for _, path in stub.requests]
    assert namespaces == ["staging", "prod"]


@pytest.mark.parametrize("content", [None, "clusters: [unclosed\n"])
def test_an_unreadable_kubeconfig_is_reported(tmp_path, content, capsys):
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)

    assert main(["--kubeconfig", str(path), "wait-ready"]) == ExitCode.CLUSTER
    assert f"cannot load the Kubernetes configuration from the kubeconfig {path}" in capsys.readouterr().err


def test_manual_job_names_fit_the_job_name_label():
    name = timestamped_name("a-very-long-cronjob-name-" * 3)
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_wait_ready_follows_the_rollout_like_kubectl(stub, kubeconfig):
    stub.deployments["gender-api"] = rollout("gender-api", NAMESPACE)

    result = run_cli(kubeconfig, "wait-ready", "--timeout", "20", *FAST)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "cluster: waiting for the Deployment spec update to be observed",
        "cluster: 1 out of 2 new replicas have been updated",
        "cluster: 1 old replicas are pending termination",
        "cluster: 1 of 2 updated replicas are available",
        'cluster: Deployment "gender-api" successfully rolled out',
    ]
    assert stub.requests.count(("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/gender-api")) == 5


def test_wait_ready_times_out_on_a_stuck_rollout(stub, kubeconfig, capsys):
    deployment, statuses = rollout("gender-api", NAMESPACE)
    stub.deployments["gender-api"] = (deployment, statuses[1:2])

    assert cli(kubeconfig, "wait-ready", "--timeout", "0.3", *FAST) == ExitCode.TIMEOUT
    assert "not rolled out within 0.3s: 1 out of 2 new replicas have been updated" in capsys.readouterr().err


def test_wait_ready_fails_when_the_progress_deadline_passed(stub, kubeconfig, capsys):
    deployment, statuses = rollout("gender-api", NAMESPACE)
    stuck = statuses[1] | {
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "gender-api-7d9f" has timed out progressing.',
            }
        ]
    }
    stub.deployments["gender-api"] = (deployment, [stuck])

    assert cli(kubeconfig, "wait-ready", *FAST) == ExitCode.FAILED
    assert 'Deployment "gender-api" exceeded its progress deadline' in capsys.readouterr().err


def test_wait_ready_names_a_missing_deployment(stub, kubeconfig, capsys):
    assert cli(kubeconfig, "wait-ready", "--deployment", "gender-nope") == ExitCode.CLUSTER
    assert 'deployments.apps "gender-nope" not found' in capsys.readouterr().err


KUSTOMIZATION = """\
# The cloud overlay.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:
  - ../../base  # everything

# SET: your registry.
images:
  - name: gender-api
    newName: registry.example.com/team/gender-api  # pushed by Jenkins
    newTag: "0.1.0"
  - name: gender-jobs
    newTag: 0.1.0
  - name: someone-else
    newTag: keep-me  # not ours

# One server.
replicas:
  - name: gender-mlflow
    count: 1
"""


@pytest.fixture
def overlay(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    return tmp_path


def test_promote_changes_only_the_tags_and_adds_a_missing_image(overlay):
    assert main(["promote", "--overlay", str(overlay), "--tag", "0.2.0"]) == 0

    expected = KUSTOMIZATION.replace("0.1.0", "0.2.0").replace(
        "# not ours\n", "# not ours\n  - name: gender-mlflow\n    newTag: 0.2.0\n"
    )
    assert (overlay / "kustomization.yaml").read_text() == expected


def test_promote_sets_the_registry_as_new_name(overlay):
    assert (
        main(
            [
                "promote",
                "--overlay",
                str(overlay / "kustomization.yaml"),
                "--tag",
                "v2",
                "--registry",
                "ghcr.io/acme/",
            ]
        )
        == 0
    )

    images = YAML().load(overlay / "kustomization.yaml")["images"]
    assert [(image["name"], image.get("newName"), image["newTag"]) for image in images] == [
        ("gender-api", "ghcr.io/acme/gender-api", "v2"),
        ("gender-jobs", "ghcr.io/acme/gender-jobs", "v2"),
        ("someone-else", None, "keep-me"),
        ("gender-mlflow", "ghcr.io/acme/gender-mlflow", "v2"),
    ]
    assert list(images[1]) == ["name", "newName", "newTag"]


IMAGE_TAG_RULE = "is not a valid image tag"
LABEL_RULE = "is not a valid Kubernetes label value, which the tag becomes in app.kubernetes.io/version"


@pytest.mark.parametrize(
    ("tag", "rule"),
    [
        ("bad:tag", IMAGE_TAG_RULE),
        (".hidden", IMAGE_TAG_RULE),
        ("x" * 129, IMAGE_TAG_RULE),
        ("spa ce", IMAGE_TAG_RULE),
        ("x" * 64, LABEL_RULE),
        ("_v1", LABEL_RULE),
        ("v1-", LABEL_RULE),
        ("v1.", LABEL_RULE),
    ],
)
def test_promote_refuses_an_invalid_tag(overlay, tag, rule, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["promote", "--overlay", str(overlay), f"--tag={tag}"])

    assert exit_info.value.code == ExitCode.USAGE
    assert rule in capsys.readouterr().err
    assert (overlay / "kustomization.yaml").read_text() == KUSTOMIZATION


def test_promote_accepts_the_longest_label_value(overlay):
    tag = "1.2.3-rc_1." + "x" * 52

    assert main(["promote", "--overlay", str(overlay), "--tag", tag]) == 0
    assert {image["newTag"] for image in YAML().load(overlay / "kustomization.yaml")["images"]} == {
        tag,
        "keep-me",
    }


def test_promote_refuses_a_bad_registry_and_a_missing_file(overlay, tmp_path, capsys):
    assert (
        main(["promote", "--overlay", str(overlay), "--tag", "1", "--registry", "Bad Registry"])
        == ExitCode.USAGE
    )
    missing = tmp_path / "absent"
    assert main(["promote", "--overlay", str(missing), "--tag", "1"]) == ExitCode.BAD_INPUT

    err = capsys.readouterr().err
    assert "--registry 'Bad Registry' does not give a valid image name" in err
    assert (
        f"no kustomization file (kustomization.yaml, kustomization.yml, Kustomization) found in {missing}"
        in err
    )
    assert (overlay / "kustomization.yaml").read_text() == KUSTOMIZATION


def test_promoted_cloud_overlay_renders_the_release_everywhere(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render the promoted overlay")
    shutil.copytree(CHECKOUT_DIR / "manifests", tmp_path / "manifests")
    overlay = tmp_path / "manifests" / "overlays" / "cloud"
    assert main(["promote", "--overlay", str(overlay), "--tag", "1.2.3", "--registry", "ghcr.io/acme"]) == 0

    output = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    )
    workloads = [
        o
        for o in YAML(typ="safe").load_all(output.stdout)
        if o and o["kind"] in ("Deployment", "CronJob", "Job")
    ]
    assert workloads
    for workload in workloads:
        assert workload["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"
        spec = workload["spec"].get("jobTemplate", workload)["spec"]["template"]
        assert spec["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"
        for container in spec["spec"]["containers"]:
            assert container["image"].startswith("ghcr.io/acme/gender-")
            assert container["image"].endswith(":1.2.3")


def test_the_role_grants_exactly_the_calls_the_cli_makes(stub, kubeconfig):
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered_objects("manifests/base")}
    stub.add_cronjob(objects["CronJob", "gender-retrain"])
    stub.deployments["gender-api"] = rollout("gender-api", NAMESPACE)

    assert cli(kubeconfig, "run-training", "--timeout", "20", *FAST) == 0
    assert cli(kubeconfig, "bootstrap", "--timeout", "20", *FAST) == 0
    assert cli(kubeconfig, "wait-ready", "--timeout", "20", *FAST) == 0

    assert set(stub.permissions) == role_permissions(objects["Role", "gender-cluster-cli"])


# What `make deploy` runs as the workstation's user; the in-cluster Role grants none of it.
KEY_OBJECTS = {Permission("", "secrets", "create"), Permission("", "configmaps", "create")}


@pytest.fixture
def admin_kubeconfig(tmp_path, monkeypatch):
    """(stub granting the Role's calls and the key objects' creation, its kubeconfig)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("GENDER_NAMESPACE", raising=False)
    with KubeStub(NAMESPACE, granted=role_permissions(cli_role()) | KEY_OBJECTS) as stub:
        yield stub, stub.write_kubeconfig(tmp_path / "kubeconfig")


def test_install_keys_creates_the_secret_and_configmap_of_the_local_pair_once(admin_kubeconfig, capsys):
    stub, kubeconfig = admin_kubeconfig
    assert cli(kubeconfig, "install-keys") == 0
    secret = stub.stored["secrets", "gender-model-signing-key"]
    installed = base64.b64decode(secret["data"]["signing-key.pem"])
    assert installed == session_key_file().read_bytes()
    configmap = stub.stored["configmaps", "gender-model-trusted-keys"]
    assert configmap["data"] == {f"{session_key().key_id}.pem": session_public_pem()}

    # The cluster's own keys are never replaced.
    stub.stored["secrets", "gender-model-signing-key"]["data"] = {"signing-key.pem": "the cluster's"}
    assert cli(kubeconfig, "install-keys") == 0
    assert stub.stored["secrets", "gender-model-signing-key"]["data"] == {"signing-key.pem": "the cluster's"}
    assert "Secret gender-model-signing-key exists: left as it is" in capsys.readouterr().err


def test_install_keys_without_a_local_key_names_it(admin_kubeconfig, tmp_path, monkeypatch, capsys):
    stub, kubeconfig = admin_kubeconfig
    monkeypatch.setenv("GENDER_SIGNING_KEY_FILE", str(tmp_path / "none.pem"))
    assert cli(kubeconfig, "install-keys") == ExitCode.USAGE
    assert f"no signing key at {tmp_path}/none.pem" in capsys.readouterr().err
    assert stub.stored == {}


def test_install_keys_is_refused_by_the_in_cluster_role(stub, kubeconfig, capsys):
    assert cli(kubeconfig, "install-keys") == ExitCode.CLUSTER
    assert "HTTP 403" in capsys.readouterr().err
    assert stub.stored == {}

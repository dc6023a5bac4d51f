"""Re-applying any rendered kustomization changes nothing and trains once: no applied set holds a
Job that `kubectl apply` or a GitOps controller would fail on or run again. The Argo CD and Flux
objects of manifests/gitops validate against those projects' API schemas and apply, per
environment, exactly the overlay plus the bootstrap Job. Every Job fails at once on what a retry
cannot fix.

The schemas are the generated models in .tools/node (`make tools`), run by
tests/support/validate_crds.mjs; without node or the models these tests fail and say so.
"""

import copy
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from model.exit_codes import ExitCode
from tests.fixtures.data import CHECKOUT_DIR
from tests.support.manifests import (
    KUSTOMIZATIONS,
    MANIFESTS,
    find,
    load_objects,
    rendered_objects,
    validate_crds,
)

GITOPS = MANIFESTS / "gitops"
TOOL_TIMEOUT_S = 60
NAMESPACE = "gender-classifier"
# Each environment's GitOps path (manifests/gitops/<environment>) and the overlay it applies.
ENVIRONMENTS = {"staging": "manifests/overlays/minikube", "cloud": "manifests/overlays/cloud"}
BOOTSTRAP = "gender-bootstrap"
RETRAIN = ["python", "-m", "jobs.retrain"]
SKIP_IF_PUBLISHED = "GENDER_SKIP_IF_PUBLISHED"
ARGO_HOOK = "argocd.argoproj.io/hook"
ARGO_HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
FLUX_FORCE = "kustomize.toolkit.fluxcd.io/force"
NOT_RETRIED = {ExitCode.USAGE, ExitCode.BAD_INPUT, ExitCode.NO_MODEL, ExitCode.NO_ACCESS}


def controller_objects() -> list[dict]:
    """The Argo CD and Flux objects, as a person applies them from manifests/gitops/{argocd,flux}."""
    files = sorted((GITOPS / "argocd").glob("*.yaml")) + sorted((GITOPS / "flux").glob("*.yaml"))
    return [obj for path in files for obj in load_objects(path.read_text())]


def controllers_applying() -> dict[str, set[str]]:
    """Kustomization folder -> the controllers that apply it ("argocd", "flux"); kubectl applies
    every folder no controller object names."""
    applying: dict[str, set[str]] = {}
    for obj in controller_objects():
        if obj["kind"] == "Application":
            applying.setdefault(obj["spec"]["source"]["path"], set()).add("argocd")
        elif obj["kind"] == "Kustomization":
            applying.setdefault(obj["spec"]["path"].removeprefix("./"), set()).add("flux")
    return applying


def job_problems(objects: list[dict], controllers: set[str]) -> list[str]:
    """Why re-applying these objects with `controllers` (none: kubectl) would fail on a Job or run
    it again; [] when it changes nothing."""
    problems = []
    for job in (o for o in objects if o["kind"] == "Job"):
        where = f"Job/{job['metadata']['name']}"
        annotations = job["metadata"].get("annotations", {})
        if not controllers:
            problems.append(f"{where}: a bare Job; a re-apply fails on its template or runs it again")
            continue
        for container in job["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if container["command"] != RETRAIN or env.get(SKIP_IF_PUBLISHED) != "true":
                problems.append(f"{where}: {container['name']} trains at every run ({SKIP_IF_PUBLISHED})")
        if "argocd" in controllers:
            # PreSync runs before the volumes exist; PostSync waits for a Healthy API, which needs a model.
            if annotations.get(ARGO_HOOK) != "Sync":
                problems.append(f"{where}: not an Argo CD Sync hook ({annotations.get(ARGO_HOOK)})")
            if "BeforeHookCreation" not in annotations.get(ARGO_HOOK_DELETE_POLICY, "").split(","):
                problems.append(f"{where}: the next sync meets the previous hook Job")
        if "flux" in controllers:
            if "ttlSecondsAfterFinished" in job["spec"]:
                problems.append(f"{where}: Flux creates it again once its TTL has removed it")
            if annotations.get(FLUX_FORCE) != "enabled":
                problems.append(f"{where}: Flux cannot apply a changed template without {FLUX_FORCE}")
    return problems


def job_specs(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    """("Kind/name", Job spec) of every Job and of every CronJob's job template."""
    for obj in objects:
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Job":
            yield owner, obj["spec"]
        elif obj["kind"] == "CronJob":
            yield owner, obj["spec"]["jobTemplate"]["spec"]


def pop_env(spec: dict) -> dict[str, dict]:
    """Remove the env of the Job spec's one container; return it by variable name."""
    (container,) = spec["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.pop("env")}


def test_every_kustomization_is_rendered_and_every_component_used():
    files = [CHECKOUT_DIR / "kustomization.yaml", *MANIFESTS.rglob("kustomization.yaml")]
    documents = {path.parent: yaml.safe_load(path.read_text()) for path in files}
    components = {folder for folder, doc in documents.items() if doc.get("kind") == "Component"}
    for folder in documents.keys() - components:
        assert str(folder.relative_to(CHECKOUT_DIR)) in KUSTOMIZATIONS, f"{folder} is never rendered"
    used = {
        (folder / path).resolve() for folder, doc in documents.items() for path in doc.get("components", [])
    }
    assert not {folder.resolve() for folder in components} - used, "a component no kustomization lists"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_no_applied_set_holds_a_job_that_a_reapply_breaks_or_runs_again(kustomization):
    controllers = controllers_applying().get(kustomization, set())
    assert job_problems(rendered_objects(kustomization), controllers) == []


def test_the_job_rule_finds_each_unsafe_job():
    (job,) = [o for o in rendered_objects("manifests/gitops/staging") if o["kind"] == "Job"]
    assert job_problems([job], {"argocd", "flux"}) == []
    assert job_problems([job], set()) == [
        f"Job/{BOOTSTRAP}: a bare Job; a re-apply fails on its template or runs it again"
    ]
    unsafe = copy.deepcopy(job)
    unsafe["spec"]["ttlSecondsAfterFinished"] = 600
    annotations = unsafe["metadata"]["annotations"]
    annotations[ARGO_HOOK] = "PostSync"
    del annotations[FLUX_FORCE]
    (container,) = unsafe["spec"]["template"]["spec"]["containers"]
    container["env"] = [e for e in container["env"] if e["name"] != SKIP_IF_PUBLISHED]
    problems = job_problems([unsafe], {"argocd", "flux"})
    for expected in (SKIP_IF_PUBLISHED, "Sync hook", "TTL", FLUX_FORCE):
        assert any(expected in problem for problem in problems), (expected, problems)


def test_controller_objects_validate_against_their_crds():
    objects = controller_objects()
    assert {o["kind"] for o in objects} == {"Application", "GitRepository", "Kustomization"}
    status, report = validate_crds(objects)
    assert [entry for entry in report if entry["errors"]] == []
    assert status == 0
    assert len(report) == len(objects)


def test_the_crd_validation_rejects_broken_objects():
    objects = {f"{o['kind']}/{o['metadata']['name']}": o for o in controller_objects()}
    no_destination = copy.deepcopy(objects["Application/gender-classifier-staging"])
    del no_destination["spec"]["destination"]
    bad_source = copy.deepcopy(objects["Kustomization/gender-classifier-staging"])
    bad_source["spec"]["sourceRef"]["kind"] = "GitRepo"
    unknown_kind = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Applicaton", "metadata": {"name": "x"}}
    status, report = validate_crds([no_destination, bad_source, unknown_kind])
    assert status == 1
    destination, source, unknown = (entry["errors"] for entry in report)
    assert any("destination" in error for error in destination), destination
    assert any(error.startswith("/spec/sourceRef/kind") for error in source), source
    assert unknown == ["no schema for apiVersion argoproj.io/v1alpha1 kind Applicaton"]


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_argo_cd_and_flux_follow_the_same_branch_and_path(environment):
    path = f"manifests/gitops/{environment}"
    assert path in KUSTOMIZATIONS
    assert controllers_applying()[path] == {"argocd", "flux"}
    objects = controller_objects()
    (application,) = [
        o for o in objects if o["kind"] == "Application" and o["spec"]["source"]["path"] == path
    ]
    (flux,) = [o for o in objects if o["kind"] == "Kustomization" and o["spec"]["path"] == f"./{path}"]
    source = find(objects, "GitRepository", flux["spec"]["sourceRef"]["name"])
    assert flux["spec"]["sourceRef"]["kind"] == "GitRepository"
    assert source["metadata"]["namespace"] == flux["metadata"]["namespace"]
    assert application["spec"]["source"]["repoURL"] == source["spec"]["url"]
    assert application["spec"]["source"]["targetRevision"] == source["spec"]["ref"]["branch"] == "main"
    assert application["spec"]["destination"]["namespace"] == NAMESPACE
    assert application["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert flux["spec"]["prune"] is True


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_the_gitops_path_is_the_overlay_plus_the_bootstrap_job(environment):
    applied = rendered_objects(f"manifests/gitops/{environment}")
    job = find(applied, "Job", BOOTSTRAP)
    assert [o for o in applied if o is not job] == rendered_objects(ENVIRONMENTS[environment])
    retrain = find(applied, "CronJob", "gender-retrain")
    assert job["metadata"]["namespace"] == retrain["metadata"]["namespace"] == NAMESPACE
    assert job["metadata"]["labels"] == retrain["metadata"]["labels"]
    # The CronJob's Job, but training only while no model is published.
    bootstrap, weekly = job["spec"], retrain["spec"]["jobTemplate"]["spec"]
    bootstrap_env, weekly_env = pop_env(bootstrap), pop_env(weekly)
    assert bootstrap == weekly
    assert weekly_env.pop(SKIP_IF_PUBLISHED)["value"] == "false"
    assert bootstrap_env.pop(SKIP_IF_PUBLISHED)["value"] == "true"
    assert bootstrap_env == weekly_env


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_jobs_fail_at_once_on_what_a_retry_cannot_fix(kustomization):
    for owner, spec in job_specs(rendered_objects(kustomization)):
        assert spec["template"]["spec"]["restartPolicy"] == "Never", owner  # podFailurePolicy needs it
        assert spec["backoffLimit"] > 0, owner
        first, *rules = spec["podFailurePolicy"]["rules"]
        # First: the first rule that matches decides, and a drained node must never count.
        assert first == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        # Then: what a retry meets again fails the Job; everything else (a busy lock, a tracking
        # server still starting) counts against backoffLimit.
        assert rules == [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": sorted(NOT_RETRIED)}}
        ], owner


def test_make_deploy_installs_the_keys_and_trains_the_first_model_once_before_waiting():
    result = subprocess.run(
        ["make", "--dry-run", "deploy", "TAG=t"],
        cwd=CHECKOUT_DIR,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    steps = [
        step
        for line in result.stdout.splitlines()
        for step in (
            "kubectl apply",
            "jobs.cluster install-keys",
            "jobs.cluster bootstrap",
            "jobs.cluster run-training",
            "jobs.cluster wait-ready",
        )
        if step in line
    ]
    assert steps == [
        "kubectl apply",
        "jobs.cluster install-keys",
        "jobs.cluster bootstrap",
        "jobs.cluster wait-ready",
    ]

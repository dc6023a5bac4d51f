"""The cluster CLI's calls to the Kubernetes API: start a Job from a CronJob and follow it,
follow a Deployment's rollout. Polls, never watches, so the Role `gender-cluster-cli` stays small:
batch cronjobs get, batch jobs create/get, pods list, pods/log get, apps deployments get.
"""

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import urllib3
import yaml  # PyYAML, which the kubernetes client parses kubeconfig files with
from kubernetes import client, config
from pydantic import ValidationError

from model.exit_codes import ExitCode

REQUEST_TIMEOUT_S = 30.0
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"  # what kubectl create job --from sets
JOB_NAME_LABEL = "job-name"  # set by the Job controller on its pods
LOGGED_PHASES = ("Running", "Succeeded", "Failed")  # a Pending pod has no log yet


class ClusterError(Exception):
    """An API call, the configuration or an input failed; the message says which and why, and `code`
    is the exit code of its kind."""

    def __init__(self, message: str, code: ExitCode = ExitCode.CLUSTER):
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn the client's exceptions into one message naming the call that failed."""
    try:
        yield
    except client.ApiException as exc:
        detail = str(exc.body or "").strip() or "no details"
        with contextlib.suppress(ValueError, TypeError, KeyError):
            detail = str(json.loads(exc.body)["message"])  # the Status object's message
        raise ClusterError(f"{action} failed: HTTP {exc.status} {exc.reason}: {detail}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(f"{action} failed: cannot reach the Kubernetes API: {exc}") from exc
    except ValidationError as exc:  # the client's models reject what the server sent
        raise ClusterError(f"{action} failed: unexpected response from the API server: {exc}") from exc


def kubeconfig_source(flag: Path | None) -> tuple[str | None, str]:
    """(the kubeconfig path list to load, or None for the pod's service account; its name for
    messages), in kubectl's order: --kubeconfig, KUBECONFIG, ~/.kube/config, then in-cluster."""
    if flag is not None:
        return str(flag), f"kubeconfig {flag}"
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"], f"KUBECONFIG {os.environ['KUBECONFIG']}"
    home = Path.home() / ".kube" / "config"
    if home.is_file():
        return str(home), f"kubeconfig {home}"
    return None, "in-cluster service account"


def load_api_client(kubeconfig: Path | None) -> client.ApiClient:
    path, source = kubeconfig_source(kubeconfig)
    if path is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ClusterError(
            "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, write ~/.kube/config, "
            "or run in a pod"
        )
    try:
        if path is None:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        # The path is passed even for KUBECONFIG: the client reads that variable once, at import.
        return config.new_client_from_config(config_file=path, persist_config=False)
    except (config.ConfigException, yaml.YAMLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"cannot load the Kubernetes configuration from the {source}: {exc}") from exc


def manual_job_name(cronjob: str) -> str:
    suffix = time.strftime("-manual-%Y%m%d-%H%M%S", time.gmtime())
    return cronjob[: 63 - len(suffix)].rstrip("-") + suffix


def job_from_cronjob(cronjob: client.V1CronJob, name: str) -> client.V1Job:
    """The Job `kubectl create job NAME --from=cronjob/...` creates (kubectl's createJobFromCronJob)."""
    template = cronjob.spec.job_template
    template_meta = template.metadata or client.V1ObjectMeta()
    # kubectl sets controller but not blockOwnerDeletion, which would need cronjobs/finalizers.
    owner = client.V1OwnerReference(
        api_version="batch/v1",
        kind="CronJob",
        name=cronjob.metadata.name,
        uid=cronjob.metadata.uid,
        controller=True,
    )
    metadata = client.V1ObjectMeta(
        name=name,
        annotations={MANUAL_ANNOTATION: "manual"} | (template_meta.annotations or {}),
        labels=template_meta.labels,
        owner_references=[owner],
    )
    return client.V1Job(api_version="batch/v1", kind="Job", metadata=metadata, spec=template.spec)


def job_outcome(status: client.V1JobStatus | None) -> client.V1JobCondition | None:
    """The Job's terminal condition (Complete or Failed), None while it runs."""
    for condition in (status and status.conditions) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def job_counts(status: client.V1JobStatus | None) -> str:
    return ", ".join(f"{key}={getattr(status, key, None) or 0}" for key in ("active", "succeeded", "failed"))


class PodLogs:
    """Prints the new part of each Job pod's log on every poll: re-read, print what was not printed."""

    def __init__(self, core: client.CoreV1Api, namespace: str, job_name: str) -> None:
        self.core, self.namespace, self.job_name = core, namespace, job_name
        self.printed: dict[tuple[str, str], str] = {}
        self.warned: set[tuple[str, str]] = set()

    def pump(self) -> None:
        with api_errors(f"listing the pods of Job {self.job_name}"):
            pods = self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"{JOB_NAME_LABEL}={self.job_name}",
                _request_timeout=REQUEST_TIMEOUT_S,
            ).items
        for pod in sorted(pods, key=lambda pod: str(pod.metadata.creation_timestamp)):
            if pod.status and pod.status.phase in LOGGED_PHASES:
                for container in pod.spec.containers:
                    self._print_new(pod.metadata.name, container.name)

    def _print_new(self, pod: str, container: str) -> None:
        key = (pod, container)
        try:
            with api_errors(f"reading the log of pod {pod} container {container}"):
                text = self.core.read_namespaced_pod_log(
                    pod, self.namespace, container=container, _request_timeout=REQUEST_TIMEOUT_S
                )
        except ClusterError as exc:  # logs are a courtesy: the Job's outcome decides the exit code
            if key not in self.warned:
                self.warned.add(key)
                say(f"warning: {exc}")
            return
        seen = self.printed.get(key, "")
        if seen and not text.startswith(seen):
            say(f"log of {pod}/{container} restarted")
            seen = ""
        if text[len(seen) :]:
            if not seen:
                say(f"log of pod {pod}, container {container}:")
            sys.stdout.write(text[len(seen) :])
            sys.stdout.flush()
        self.printed[key] = text


def poll_until(deadline: float, poll_s: float, check: Callable[[], int | None]) -> int | None:
    """Call check until it returns an exit code or the deadline passes (then None)."""
    while True:
        outcome = check()
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def run_training(
    api: client.ApiClient,
    namespace: str,
    cronjob_name: str,
    job_name: str | None,
    timeout_s: float,
    poll_s: float,
) -> int:
    """Create a Job from the CronJob, print its pods' logs, return its outcome as an exit code."""
    batch = client.BatchV1Api(api)
    with api_errors(f"reading CronJob {cronjob_name} in namespace {namespace}"):
        cronjob = batch.read_namespaced_cron_job(cronjob_name, namespace, _request_timeout=REQUEST_TIMEOUT_S)
    name = job_name or manual_job_name(cronjob_name)
    with api_errors(f"creating Job {name} in namespace {namespace}"):
        batch.create_namespaced_job(
            namespace, job_from_cronjob(cronjob, name), _request_timeout=REQUEST_TIMEOUT_S
        )
    say(f"created Job {name} from CronJob {cronjob_name}; waiting up to {timeout_s:g}s")
    logs = PodLogs(client.CoreV1Api(api), namespace, name)
    last: dict[str, client.V1JobStatus | None] = {}

    def check() -> int | None:
        with api_errors(f"reading Job {name}"):
            last["status"] = status = batch.read_namespaced_job(
                name, namespace, _request_timeout=REQUEST_TIMEOUT_S
            ).status
        logs.pump()  # after reading the status, so a finished Job's pods show their whole log
        condition = job_outcome(status)
        if condition is None:
            return None
        if condition.type == "Complete":
            say(f"Job {name} completed ({job_counts(status)})")
            return ExitCode.OK
        say(f"Job {name} failed: {condition.reason}: {condition.message} ({job_counts(status)})")
        return ExitCode.FAILED

    outcome = poll_until(time.monotonic() + timeout_s, poll_s, check)
    if outcome is None:
        counts = job_counts(last.get("status"))
        say(f"Job {name} did not finish within {timeout_s:g}s ({counts}); it keeps running in the cluster")
        return ExitCode.TIMEOUT
    return outcome


def rollout_status(deployment: client.V1Deployment) -> tuple[bool, str]:
    """kubectl rollout status for a Deployment: (done, message); raises if the deadline passed."""
    name, spec = deployment.metadata.name, deployment.spec
    status = deployment.status or client.V1DeploymentStatus()
    if (deployment.metadata.generation or 0) > (status.observed_generation or 0):
        return False, "waiting for the Deployment spec update to be observed"
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            raise ClusterError(f'Deployment "{name}" exceeded its progress deadline: {condition.message}')
    replicas, updated = status.replicas or 0, status.updated_replicas or 0
    available = status.available_replicas or 0
    if spec.replicas is not None and updated < spec.replicas:
        return False, f"{updated} out of {spec.replicas} new replicas have been updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f'Deployment "{name}" successfully rolled out'


def wait_ready(api: client.ApiClient, namespace: str, name: str, timeout_s: float, poll_s: float) -> int:
    """Poll the Deployment until its rollout is complete; return an exit code."""
    apps = client.AppsV1Api(api)
    last = {"message": ""}

    def check() -> int | None:
        with api_errors(f"reading Deployment {name} in namespace {namespace}"):
            deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT_S)
        try:
            done, message = rollout_status(deployment)
        except ClusterError as exc:
            say(str(exc))
            return ExitCode.FAILED
        if message != last["message"]:
            say(message)
            last["message"] = message
        return ExitCode.OK if done else None

    outcome = poll_until(time.monotonic() + timeout_s, poll_s, check)
    if outcome is None:
        say(f'Deployment "{name}" not rolled out within {timeout_s:g}s: {last["message"]}')
        return ExitCode.TIMEOUT
    return outcome

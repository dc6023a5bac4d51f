"""The cluster CLI's calls to the Kubernetes API: start a Job from a CronJob and follow it, follow a
Deployment's rollout. Polls and streams logs, never watches, so the Role `gender-cluster-cli` stays
small: batch cronjobs get, batch jobs create/get/list, pods list, pods/log get, events list, apps
deployments get.

A CronJob's job template becomes a Job as raw JSON, as `kubectl create job --from` copies it: the
client's models would refuse or drop the fields this client version does not know.
"""

import contextlib
import copy
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import urllib3
import yaml  # PyYAML, which the kubernetes client parses kubeconfig files with
from kubernetes import client, config
from pydantic import ValidationError

from model.exit_codes import ExitCode

REQUEST_TIMEOUT_S = 30.0
LOG_DRAIN_S = 30.0  # once the Job has ended, how long its pods' log streams may take to end
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"  # what kubectl create job --from sets
JOB_NAME_LABEL = "job-name"  # set by the Job controller on its pods
# The Job's own end after activeDeadlineSeconds: its pods get their grace period to stop, then the
# controller marks the Job Failed. The CLI waits for that, so its default timeout never cuts in first.
DEFAULT_GRACE_S = 30  # Kubernetes' terminationGracePeriodSeconds when the pod sets none
CONTROLLER_SLACK_S = 60.0
NO_DEADLINE_TIMEOUT_S = 3600.0
NORMAL_WAITING = ("ContainerCreating", "PodInitializing")  # every starting container passes these
VOLUME_EVENTS = ("FailedAttachVolume", "FailedMount")  # Multi-Attach, an unmountable volume
CRONJOB_PATH = "/apis/batch/v1/namespaces/{namespace}/cronjobs/{name}"
JOBS_PATH = "/apis/batch/v1/namespaces/{namespace}/jobs"
JOB_PATH = "/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
PODS_PATH = "/api/v1/namespaces/{namespace}/pods"
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"
SECRETS_PATH = "/api/v1/namespaces/{namespace}/secrets"
CONFIGMAPS_PATH = "/api/v1/namespaces/{namespace}/configmaps"


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
    except (ValidationError, json.JSONDecodeError) as exc:  # not the JSON or the objects expected
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


def call_json(
    api: client.ApiClient,
    method: str,
    path: str,
    path_params: dict[str, str],
    query: dict[str, str] | None = None,
    body: dict | None = None,
) -> dict:
    """One API call, JSON in and out as the server speaks it, past the client's models."""
    request = api.param_serialize(
        method=method,
        resource_path=path,
        path_params=path_params,
        query_params=list((query or {}).items()),
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request, _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    if not 200 <= response.status <= 299:
        raise client.ApiException(http_resp=response)
    return json.loads(response.data)


def create_if_absent(api: client.ApiClient, namespace: str, path: str, body: dict) -> bool:
    """Create the object; False, and nothing changed, when one of that name exists already."""
    name = f"{body['kind']} {body['metadata']['name']}"
    with api_errors(f"creating {name}"):
        try:
            call_json(api, "POST", path, {"namespace": namespace}, body=body)
        except client.ApiException as exc:
            if exc.status != 409:  # AlreadyExists
                raise
            say(f"{name} exists: left as it is")
            return False
    say(f"created {name}")
    return True


def timestamped_name(prefix: str) -> str:
    """prefix-<UTC time>-<random>: the random part keeps two runs in the same second apart."""
    suffix = time.strftime("-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)
    return prefix[: 63 - len(suffix)].rstrip("-") + suffix


def job_from_cronjob(cronjob: dict, name: str) -> dict:
    """The Job `kubectl create job NAME --from=cronjob/...` creates (kubectl's createJobFromCronJob),
    its spec copied field by field, whatever the fields are."""
    template = cronjob["spec"]["jobTemplate"]
    template_meta = template.get("metadata") or {}
    # kubectl sets controller but not blockOwnerDeletion, which would need cronjobs/finalizers.
    owner = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": cronjob["metadata"]["name"],
        "uid": cronjob["metadata"]["uid"],
        "controller": True,
    }
    metadata = {
        "name": name,
        "annotations": {MANUAL_ANNOTATION: "manual"} | (template_meta.get("annotations") or {}),
        "ownerReferences": [owner],
    }
    if template_meta.get("labels"):
        metadata["labels"] = template_meta["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": copy.deepcopy(template["spec"]),
    }


def set_container_env(job: dict, container_env: dict[str, dict[str, str]]) -> None:
    """Set variables on named containers of the Job's pod, replacing any of the same name."""
    containers = {container["name"]: container for container in job["spec"]["template"]["spec"]["containers"]}
    for name, variables in container_env.items():
        if name not in containers:
            raise ClusterError(f"the job template has no container {name!r} (it has {', '.join(containers)})")
        container = containers[name]
        kept = [entry for entry in container.get("env") or [] if entry["name"] not in variables]
        container["env"] = kept + [{"name": key, "value": value} for key, value in variables.items()]


def default_timeout(job: dict) -> float:
    """How long to wait for the Job by default: past its activeDeadlineSeconds, long enough to see the
    Job controller end it."""
    deadline = job["spec"].get("activeDeadlineSeconds")
    if deadline is None:
        return NO_DEADLINE_TIMEOUT_S
    grace = job["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    return deadline + grace + CONTROLLER_SLACK_S


def job_outcome(status: dict | None) -> dict | None:
    """The Job's terminal condition (Complete or Failed), None while it runs."""
    for condition in (status or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return condition
    return None


def job_counts(status: dict | None) -> str:
    return ", ".join(f"{key}={(status or {}).get(key) or 0}" for key in ("active", "succeeded", "failed"))


def active_jobs(api: client.ApiClient, namespace: str, cronjob: dict) -> list[str]:
    """The unfinished Jobs the CronJob controls, scheduled or created by hand: what its
    `concurrencyPolicy: Forbid` waits for. (Its status.active lags behind a Job just created.)"""
    with api_errors(f"listing the Jobs in namespace {namespace}"):
        jobs = call_json(api, "GET", JOBS_PATH, {"namespace": namespace})["items"]
    uid = cronjob["metadata"]["uid"]
    return sorted(
        job["metadata"]["name"]
        for job in jobs
        if any(
            ref.get("controller") and ref["uid"] == uid
            for ref in job["metadata"].get("ownerReferences") or []
        )
        and job_outcome(job.get("status")) is None
    )


def container_statuses(pod: dict) -> list[dict]:
    status = pod.get("status") or {}
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def pending_reasons(pod: dict, events: list[dict]) -> list[str]:
    """Why a Pending pod does not start: the scheduler's verdict (Unschedulable), a container's
    waiting reason (ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...), a volume's
    warning event (Multi-Attach, a failed mount)."""
    reasons = [
        f"{condition.get('reason')}: {condition.get('message')}"
        for condition in (pod.get("status") or {}).get("conditions") or []
        if condition["type"] == "PodScheduled" and condition["status"] == "False"
    ]
    for container in container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] not in NORMAL_WAITING:
            reasons.append(f"container {container['name']}: {waiting['reason']}: {waiting.get('message')}")
    reasons += [
        f"{event['reason']}: {event.get('message')}"
        for event in events
        if event.get("type") == "Warning" and event.get("reason") in VOLUME_EVENTS
    ]
    return reasons


class PendingReport:
    """Says once why each Pending pod of the Job waits, reading its events for volume trouble."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.said: set[tuple[str, str]] = set()

    def check(self, pods: list[dict]) -> None:
        for pod in pods:
            if (pod.get("status") or {}).get("phase") != "Pending":
                continue
            name = pod["metadata"]["name"]
            selector = f"involvedObject.uid={pod['metadata']['uid']}"
            with api_errors(f"listing the events of pod {name}"):
                events = call_json(
                    self.api, "GET", EVENTS_PATH, {"namespace": self.namespace}, {"fieldSelector": selector}
                )["items"]
            for reason in pending_reasons(pod, events):
                if (name, reason) not in self.said:
                    self.said.add((name, reason))
                    say(f"pod {name} is pending: {reason}")


class PodLogs:
    """Streams the log of each started container of the Job's pods to stdout: one `follow` request
    per container, read to its end (the container's) by a thread of its own."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.streams: dict[tuple[str, str], threading.Thread] = {}
        self.output = threading.Lock()  # whole lines, when two pods log at once

    def follow(self, pods: list[dict]) -> None:
        for pod in sorted(pods, key=lambda pod: pod["metadata"].get("creationTimestamp", "")):
            for container in container_statuses(pod):
                key = (pod["metadata"]["name"], container["name"])
                state = container.get("state") or {}
                if key not in self.streams and ("running" in state or "terminated" in state):
                    self.streams[key] = threading.Thread(target=self._stream, args=key, daemon=True)
                    self.streams[key].start()

    def drain(self, timeout_s: float) -> None:
        """Wait until the streams have ended (their containers have), at most timeout_s in all."""
        deadline = time.monotonic() + timeout_s
        for stream in self.streams.values():
            stream.join(max(0.0, deadline - time.monotonic()))

    def _stream(self, pod: str, container: str) -> None:
        try:
            with api_errors(f"reading the log of pod {pod} container {container}"):
                # No read timeout: a training step may print nothing for longer than any fixed limit.
                response = self.core.read_namespaced_pod_log(
                    pod, self.namespace, container=container, follow=True, _preload_content=False
                )
                say(f"log of pod {pod}, container {container}:")
                for line in response:
                    with self.output:
                        sys.stdout.write(line.decode("utf-8", errors="replace"))
                        sys.stdout.flush()
        except ClusterError as exc:  # logs are a courtesy: the Job's outcome decides the exit code
            say(f"warning: {exc}")


def poll_until(deadline: float, poll_s: float, check: Callable[[], int | None]) -> int | None:
    """Call check until it returns an exit code or the deadline passes (then None)."""
    while True:
        outcome = check()
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def run_from_cronjob(
    api: client.ApiClient,
    namespace: str,
    cronjob_name: str,
    job_name: str,
    timeout_s: float | None,
    poll_s: float,
    container_env: dict[str, dict[str, str]] | None = None,
) -> int:
    """Create a Job from the CronJob (with `container_env`: container name -> variables), print its
    pods' logs and why they wait, return its outcome as an exit code. Refuses, with WRITER_BUSY, while
    a Job of a CronJob whose concurrencyPolicy is Forbid runs."""
    with api_errors(f"reading CronJob {cronjob_name} in namespace {namespace}"):
        cronjob = call_json(api, "GET", CRONJOB_PATH, {"namespace": namespace, "name": cronjob_name})
    if cronjob["spec"].get("concurrencyPolicy") == "Forbid":
        running = active_jobs(api, namespace, cronjob)
        if running:
            message = (
                f"CronJob {cronjob_name} forbids concurrent runs (concurrencyPolicy: Forbid) and its "
                f"Job {', '.join(running)} is still running: wait for it to end, or delete it"
            )
            raise ClusterError(message, ExitCode.WRITER_BUSY)
    job = job_from_cronjob(cronjob, job_name)
    set_container_env(job, container_env or {})
    if timeout_s is None:
        timeout_s = default_timeout(job)
    with api_errors(f"creating Job {job_name} in namespace {namespace}"):
        call_json(api, "POST", JOBS_PATH, {"namespace": namespace}, body=job)
    say(f"created Job {job_name} from CronJob {cronjob_name}; waiting up to {timeout_s:g}s")
    return follow_job(api, namespace, job_name, timeout_s, poll_s)


def follow_job(api: client.ApiClient, namespace: str, name: str, timeout_s: float, poll_s: float) -> int:
    logs = PodLogs(client.CoreV1Api(api), namespace)
    pending = PendingReport(api, namespace)
    last: dict[str, dict | None] = {}

    def check() -> int | None:
        with api_errors(f"reading Job {name}"):
            last["status"] = status = call_json(
                api, "GET", JOB_PATH, {"namespace": namespace, "name": name}
            ).get("status")
        with api_errors(f"listing the pods of Job {name}"):
            selector = {"labelSelector": f"{JOB_NAME_LABEL}={name}"}
            pods = call_json(api, "GET", PODS_PATH, {"namespace": namespace}, selector)["items"]
        pending.check(pods)
        logs.follow(pods)  # after reading the status, so a finished Job's pods all get streamed
        condition = job_outcome(status)
        if condition is None:
            return None
        logs.drain(LOG_DRAIN_S)
        if condition["type"] == "Complete":
            say(f"Job {name} completed ({job_counts(status)})")
            return ExitCode.OK
        reason, message = condition.get("reason"), condition.get("message")
        say(f"Job {name} failed: {reason}: {message} ({job_counts(status)})")
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

"""A stand-in for the Kubernetes API server: just the paths the cluster CLI uses.

It answers with the JSON objects a real API server returns (full CronJob, Job, Pod, PodList,
Deployment and Status objects), keeps state (a created Job gets a pod that runs, then
succeeds or fails; a Deployment's status advances on each GET) and records every request both
as (method, path) and as the RBAC permission it needs, parsed like the API server's RequestInfo.
"""

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

CREATED_AT = "2025-06-01T10:00:00Z"
STARTED_AT = "2025-06-01T10:00:05Z"
FINISHED_AT = "2025-06-01T10:02:00Z"
JOB_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)
# GETs of a Job after which its pod is Pending, then Running, then finished.
POLLS_PENDING, POLLS_RUNNING = 1, 2
LINES_WHILE_RUNNING = 2
SHUTDOWN_POLL_S = 0.05  # how often serve_forever checks for shutdown()


class Permission(NamedTuple):
    group: str
    resource: str  # "pods/log" for a subresource, as RBAC rules name it
    verb: str


def request_permission(method: str, path: str, query: dict[str, list[str]]) -> Permission:
    """The (apiGroup, resource[/subresource], verb) an RBAC authorizer checks for this request."""
    parts = [part for part in path.split("/") if part]
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource, name, subresource = [*rest, "", ""][:3]
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") == ["true"] else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return Permission(group, f"{resource}/{subresource}" if subresource else resource, verb)


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def not_found(resource: str, group: str, name: str) -> tuple[int, dict]:
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource} | ({"group": group} if group else {})
    return 404, status_object(404, "NotFound", f'{qualified} "{name}" not found', details)


def meta(name: str, namespace: str, **extra) -> dict:
    return {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "resourceVersion": "1001",
        "generation": 1,
        "creationTimestamp": CREATED_AT,
    } | extra


def cronjob(name: str, namespace: str) -> dict:
    """The retraining CronJob as the API server returns it (defaults filled in)."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "trainer"}
    container = {
        "name": "trainer",
        "image": "gender-jobs:0.1.0",
        "command": ["python", "-m", "jobs.retrain"],
        "env": [{"name": "GENDER_MODEL_DIR", "value": "/models"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    template = {
        "metadata": {"labels": labels, "annotations": {"gender-classifier/purpose": "retrain"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "serviceAccountName": "default",
                    "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                    "schedulerName": "default-scheduler",
                },
            },
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(name, namespace, labels=labels),
        "spec": {
            "schedule": "0 3 * * *",
            "concurrencyPolicy": "Forbid",
            "suspend": False,
            "jobTemplate": template,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
        },
        "status": {},
    }


def rollout(name: str, namespace: str, replicas: int = 2) -> tuple[dict, list[dict]]:
    """A Deployment at generation 2 and the statuses its controller reports, one per GET."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(
            name, namespace, generation=2, annotations={"deployment.kubernetes.io/revision": "2"}
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{"name": "api", "image": "gender-api:0.2.0"}]},
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }

    def status(generation: int, total: int, updated: int, available: int) -> dict:
        return {
            "observedGeneration": generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": total - available,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            ],
        }

    statuses = [
        status(1, replicas, replicas, replicas),  # new spec not observed yet
        status(2, replicas + 1, 1, replicas),  # new replicas being created
        status(2, replicas + 1, replicas, replicas),  # old replica pending termination
        status(2, replicas, replicas, replicas - 1),  # new replicas not all available
        status(2, replicas, replicas, replicas),  # complete
    ]
    return deployment, statuses


class KubeStub:
    """State and request log of the stand-in API server; `with KubeStub() as stub:` serves it."""

    def __init__(self, namespace: str = "gender-classifier") -> None:
        self.namespace = namespace
        self.requests: list[tuple[str, str]] = []
        self.permissions: list[Permission] = []
        self.cronjobs = {"gender-retrain": cronjob("gender-retrain", namespace)}
        self.jobs: dict[str, dict] = {}
        self.created: list[dict] = []  # Job bodies exactly as the client POSTed them
        self.pods: dict[str, dict] = {}
        self.deployments: dict[str, tuple[dict, list[dict]]] = {}
        self.job_outcome = "succeed"  # or "fail", or "hang" (stays Running)
        self.log_lines = ["loading users.csv", "training candidate", "gate passed", "published model"]
        self._job_polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "KubeStub":
        threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path) -> Path:
        context = {"cluster": "stub", "user": "stub"}
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            "contexts": [{"name": "stub", "context": context}],
            "current-context": "stub",
        }
        path.write_text(json.dumps(kubeconfig))  # JSON is YAML
        return path

    def handle(self, method: str, url: str, body: bytes) -> tuple[int, dict | str]:
        split = urlsplit(url)
        query = parse_qs(split.query)
        with self._lock:
            self.requests.append((method, split.path))
            try:
                permission = request_permission(method, split.path, query)
            except (IndexError, KeyError):
                return 404, status_object(404, "NotFound", "the server could not find the requested resource")
            self.permissions.append(permission)
            name = split.path.rstrip("/").split("/")[-2 if permission.resource == "pods/log" else -1]
            match permission:
                case ("batch", "cronjobs", "get"):
                    found = self.cronjobs.get(name)
                    return (200, found) if found else not_found("cronjobs", "batch", name)
                case ("batch", "jobs", "create"):
                    return self._create_job(json.loads(body))
                case ("batch", "jobs", "get"):
                    return (
                        (200, self._poll_job(name)) if name in self.jobs else not_found("jobs", "batch", name)
                    )
                case ("", "pods", "list"):
                    return 200, self._list_pods(query.get("labelSelector", [""])[0])
                case ("", "pods/log", "get"):
                    return self._pod_log(name, query.get("container", [""])[0])
                case ("apps", "deployments", "get"):
                    return self._poll_deployment(name)
            return 404, status_object(404, "NotFound", "the server could not find the requested resource")

    def add_cronjob(self, manifest: dict) -> None:
        """Serve a CronJob manifest (e.g. rendered from manifests/) as the API server would store it."""
        stored = copy.deepcopy(manifest)
        stored["metadata"] |= meta(stored["metadata"]["name"], self.namespace)
        self.cronjobs[stored["metadata"]["name"]] = stored | {"status": {}}

    def _create_job(self, job: dict) -> tuple[int, dict]:
        self.created.append(job)
        name = job["metadata"]["name"]
        if name in self.jobs:
            message = f'jobs.batch "{name}" already exists'
            details = {"name": name, "group": "batch", "kind": "jobs"}
            return 409, status_object(409, "AlreadyExists", message, details)
        stored = copy.deepcopy(job)
        stored["metadata"] |= meta(name, self.namespace)
        uid = stored["metadata"]["uid"]
        selector = {"batch.kubernetes.io/controller-uid": uid}
        spec = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed"}
        spec |= {"suspend": False, "podReplacementPolicy": "TerminatingOrFailed"} | stored["spec"]
        template_meta = spec["template"].setdefault("metadata", {})
        template_meta["labels"] = template_meta.get("labels", {}) | dict.fromkeys(JOB_LABELS[::2], uid)
        template_meta["labels"] |= dict.fromkeys(JOB_LABELS[1::2], name)
        stored |= {"spec": spec | {"selector": {"matchLabels": selector}}, "status": {}}
        self.jobs[name] = stored
        return 201, stored

    def _poll_job(self, name: str) -> dict:
        polls = self._job_polls[name] = self._job_polls.get(name, 0) + 1
        job = self.jobs[name]
        pod_name = f"{name}-x7k2p"
        if polls >= POLLS_PENDING and pod_name not in self.pods:
            self.pods[pod_name] = self._new_pod(pod_name, job)
        phase = "Pending" if polls == POLLS_PENDING else "Running"
        if polls > POLLS_RUNNING and self.job_outcome != "hang":
            phase = "Succeeded" if self.job_outcome == "succeed" else "Failed"
        set_pod_phase(self.pods[pod_name], phase)
        job["status"] = job_status(phase)
        return job

    def _new_pod(self, name: str, job: dict) -> dict:
        template = job["spec"]["template"]
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"]}
        owner |= {"uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        metadata = meta(name, self.namespace, generateName=name.rsplit("-", 1)[0] + "-")
        metadata |= {"labels": template["metadata"]["labels"], "ownerReferences": [owner]}
        spec = copy.deepcopy(template["spec"]) | {"nodeName": "node-1"}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {}}

    def _list_pods(self, selector: str) -> dict:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            {key: value for key, value in pod.items() if key not in ("apiVersion", "kind")}
            for pod in self.pods.values()
            if wanted.items() <= pod["metadata"]["labels"].items()
        ]
        return {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "2002"},
            "items": items,
        }

    def _pod_log(self, name: str, container: str) -> tuple[int, dict | str]:
        pod = self.pods.get(name)
        if pod is None:
            return not_found("pods", "", name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container not in names:
            return 400, status_object(400, "BadRequest", f"container {container} is not valid for pod {name}")
        phase = pod["status"]["phase"]
        if phase == "Pending":
            message = f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            return 400, status_object(400, "BadRequest", message)
        lines = self.log_lines[:LINES_WHILE_RUNNING] if phase == "Running" else self.log_lines
        return 200, "".join(line + "\n" for line in lines)

    def _poll_deployment(self, name: str) -> tuple[int, dict]:
        if name not in self.deployments:
            return not_found("deployments", "apps", name)
        deployment, statuses = self.deployments[name]
        deployment["status"] = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return 200, deployment

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                code, payload = stub.handle(self.command, self.path, body)
                is_text = isinstance(payload, str)
                data = (payload if is_text else json.dumps(payload)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if is_text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _respond

            def log_message(self, format: str, *args: object) -> None:
                """Keep test output clean: requests are recorded on the stub instead."""

        return Handler


def set_pod_phase(pod: dict, phase: str) -> None:
    name = pod["spec"]["containers"][0]["name"]
    states = {
        "Pending": {"waiting": {"reason": "ContainerCreating"}},
        "Running": {"running": {"startedAt": STARTED_AT}},
        "Succeeded": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": FINISHED_AT}},
        "Failed": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": FINISHED_AT}},
    }
    image = pod["spec"]["containers"][0]["image"]
    image_id = "" if phase == "Pending" else f"docker.io/library/{image}@sha256:{'ab' * 32}"
    container_status = {"name": name, "image": image, "imageID": image_id, "ready": phase == "Running"}
    container_status |= {"restartCount": 0, "started": phase == "Running", "state": states[phase]}
    pod["status"] = {"phase": phase, "hostIP": "10.0.0.5", "podIP": "10.244.0.12", "startTime": STARTED_AT}
    pod["status"]["containerStatuses"] = [container_status]


def job_status(pod_phase: str) -> dict:
    status = {"startTime": STARTED_AT, "terminating": 0, "uncountedTerminatedPods": {}}
    if pod_phase in ("Pending", "Running"):
        return status | {"active": 1, "ready": int(pod_phase == "Running")}
    if pod_phase == "Succeeded":
        reasons = [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]
        status |= {"succeeded": 1, "ready": 0, "completionTime": FINISHED_AT}
    else:
        reasons = [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
        status |= {"failed": 1, "ready": 0}
    message = (
        "Reached expected number of succeeded pods"
        if pod_phase == "Succeeded"
        else "Job has reached the specified backoff limit"
    )
    status["conditions"] = [
        {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": FINISHED_AT,
            "lastTransitionTime": FINISHED_AT,
        }
        for kind, reason in reasons
    ]
    return status

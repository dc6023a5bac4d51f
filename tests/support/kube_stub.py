"""A stand-in for the Kubernetes API server: just the paths the cluster CLI uses.

It answers with the JSON objects a real API server returns (full CronJob, Job, JobList, Pod,
PodList, EventList, Deployment and Status objects), keeps state (a created Job gets a pod that
runs, then succeeds or fails, or stays Pending for a given cause; a Deployment's status advances
on each GET), streams pod logs as `follow=true` does, and records every request both as
(method, path) and as the RBAC permission it needs, parsed like the API server's RequestInfo.
Like an RBAC authorizer it refuses, 403, what the Role gender-cluster-cli (or the rights given)
does not grant. With `pods_on_create` a Job's pod exists as soon as the Job does, as the Job
controller makes it, and each GET of the Job, its status or its pod moves it on: what Airflow's
KubernetesJobOperator, which looks for the pod before it asks for the Job, needs.
"""

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fixtures.data import CHECKOUT_DIR

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
RBAC_FILE = CHECKOUT_DIR / "manifests" / "base" / "rbac.yaml"
CLI_ROLE = "gender-cluster-cli"
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)
MULTI_ATTACH = (
    'Multi-Attach error for volume "pvc-5c1e0b7a" Volume is already used by pod(s) gender-batch-predict-x2z9q'
)


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
        verb = "get" if name else ("watch" if is_true(query.get("watch")) else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return Permission(group, f"{resource}/{subresource}" if subresource else resource, verb)


def is_true(values: list[str] | None) -> bool:
    """A boolean query parameter: `true`, or `True` as the Python client writes it."""
    return values is not None and values[-1].lower() == "true"


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Whether a label selector's terms (`k=v`, `k!=v`, `!k`) all hold for these labels."""
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            held = term[1:] not in labels
        elif "!=" in term:
            key, value = term.split("!=", 1)
            held = labels.get(key) != value
        else:
            key, value = term.split("=", 1)
            held = labels.get(key) == value
        if not held:
            return False
    return True


def role_permissions(role: dict) -> set[Permission]:
    """Every (apiGroup, resource, verb) a Role's rules grant (the Role names no wildcard)."""
    return {
        Permission(group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def cli_role() -> dict:
    """The Role gender-cluster-cli as manifests/base/rbac.yaml writes it."""
    documents = yaml.safe_load_all(RBAC_FILE.read_text())
    [role] = [doc for doc in documents if doc["kind"] == "Role" and doc["metadata"]["name"] == CLI_ROLE]
    return role


def forbidden(permission: Permission, name: str, namespace: str, user: str) -> tuple[int, dict]:
    """The Status of an RBAC denial, as the API server's authorization filter words it."""
    resource, _, subresource = permission.resource.partition("/")
    qualified = f"{resource}.{permission.group}" if permission.group else resource
    subject = f"{qualified} {json.dumps(name)}" if name else qualified
    message = (
        f'{subject} is forbidden: User "{user}" cannot {permission.verb} resource "{resource}"'
        + (f' with subresource "{subresource}"' if subresource else "")
        + f' in API group "{permission.group}" in the namespace "{namespace}"'
    )
    details = {"name": name, "kind": resource} | ({"group": permission.group} if permission.group else {})
    return 403, status_object(403, "Forbidden", message, details)


def object_list(kind: str, api_version: str, objects: list[dict]) -> dict:
    items = [
        {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")} for obj in objects
    ]
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "2002"}, "items": items}


def field(obj: dict, path: str) -> str:
    """A field selector's value: obj at a dotted path, as a string."""
    value = obj
    for key in path.split("."):
        value = value.get(key, "") if isinstance(value, dict) else ""
    return str(value)


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
        "name": "retrain",
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

    def __init__(
        self,
        namespace: str = "gender-classifier",
        granted: set[Permission] | None = None,
        user: str | None = None,
        pods_on_create: bool = False,
    ) -> None:
        self.namespace = namespace
        self.granted = role_permissions(cli_role()) if granted is None else granted
        self.user = user or f"system:serviceaccount:{namespace}:{CLI_ROLE}"
        self.pods_on_create = pods_on_create
        self.requests: list[tuple[str, str]] = []
        self.permissions: list[Permission] = []  # asked for, granted or not
        self.cronjobs = {"gender-retrain": cronjob("gender-retrain", namespace)}
        self.jobs: dict[str, dict] = {}
        self.created: list[dict] = []  # Job bodies exactly as the client POSTed them
        self.pods: dict[str, dict] = {}
        self.events: list[dict] = []
        self.deployments: dict[str, tuple[dict, list[dict]]] = {}
        # ("secrets" or "configmaps", name) -> the object as created
        self.stored: dict[tuple[str, str], dict] = {}
        self.job_outcome = "succeed"  # or "fail", or "hang" (stays Running)
        # "ImagePullBackOff", "Unschedulable" or "Multi-Attach": the pod stays Pending for that reason.
        self.pending_cause: str | None = None
        self.log_lines = ["loading users.csv", "training candidate", "gate passed", "published model"]
        self._job_polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a pod's phase changed, or the stub stops
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "KubeStub":
        threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:  # ends the log streams still open
            self._stopping = True
            self._changed.notify_all()
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

    def handle(self, method: str, url: str, body: bytes) -> tuple[int, dict | Iterator[str]]:
        split = urlsplit(url)
        query = parse_qs(split.query)
        with self._lock:
            self.requests.append((method, split.path))
            try:
                permission = request_permission(method, split.path, query)
            except (IndexError, KeyError):
                return 404, status_object(404, "NotFound", "the server could not find the requested resource")
            self.permissions.append(permission)
            name = split.path.rstrip("/").split("/")[-2 if "/" in permission.resource else -1]
            if permission not in self.granted:
                named = name if permission.verb not in ("list", "create") else ""
                return forbidden(permission, named, self.namespace, self.user)
            match permission:
                case ("batch", "cronjobs", "get"):
                    found = self.cronjobs.get(name)
                    return (200, found) if found else not_found("cronjobs", "batch", name)
                case ("batch", "jobs", "create"):
                    return self._create_job(json.loads(body))
                case ("batch", "jobs" | "jobs/status", "get"):
                    return (
                        (200, self._poll_job(name)) if name in self.jobs else not_found("jobs", "batch", name)
                    )
                case ("batch", "jobs", "delete"):
                    return self._delete_job(name)
                case ("batch", "jobs", "list"):
                    return 200, object_list("JobList", "batch/v1", list(self.jobs.values()))
                case ("", "pods", "list"):
                    return 200, self._list_pods(query.get("labelSelector", [""])[0])
                case ("", "pods", "get"):
                    return self._get_pod(name)
                case ("", "pods", "patch"):
                    return self._patch_pod(name, json.loads(body))
                case ("", "pods/log", "get"):
                    return self._pod_log(
                        name,
                        query.get("container", [""])[0],
                        is_true(query.get("follow")),
                        is_true(query.get("timestamps")),
                    )
                case ("", "events", "list"):
                    return 200, self._list_events(query.get("fieldSelector", [""])[0])
                case ("apps", "deployments", "get"):
                    return self._poll_deployment(name)
                case ("", "secrets" | "configmaps", "create"):
                    return self._create_stored(permission.resource, json.loads(body))
            return 404, status_object(404, "NotFound", "the server could not find the requested resource")

    def add_cronjob(self, manifest: dict) -> None:
        """Serve a CronJob manifest (e.g. rendered from manifests/) as the API server would store it."""
        stored = copy.deepcopy(manifest)
        stored["metadata"] |= meta(stored["metadata"]["name"], self.namespace)
        self.cronjobs[stored["metadata"]["name"]] = stored | {"status": {}}

    def _create_stored(self, resource: str, obj: dict) -> tuple[int, dict]:
        name = obj["metadata"]["name"]
        if (resource, name) in self.stored:
            message = f'{resource} "{name}" already exists'
            return 409, status_object(409, "AlreadyExists", message, {"name": name, "kind": resource})
        obj["metadata"] |= meta(name, self.namespace)
        self.stored[resource, name] = obj
        return 201, obj

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
        if self.pods_on_create:
            self._poll_job(name)
        return 201, stored

    def _delete_job(self, name: str) -> tuple[int, dict]:
        if self.jobs.pop(name, None) is None:
            return not_found("jobs", "batch", name)
        self.pods = {key: pod for key, pod in self.pods.items() if owner_job(pod) != name}
        self._changed.notify_all()
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _get_pod(self, name: str) -> tuple[int, dict]:
        """A pod, after a poll of its Job: time passes for the Job whichever of the two is asked."""
        if name not in self.pods:
            return not_found("pods", "", name)
        if owner_job(self.pods[name]) in self.jobs:
            self._poll_job(owner_job(self.pods[name]))
        return 200, self.pods[name]

    def _patch_pod(self, name: str, patch: dict) -> tuple[int, dict]:
        """A merge patch of a pod's labels (the only field a client here patches)."""
        if name not in self.pods:
            return not_found("pods", "", name)
        self.pods[name]["metadata"]["labels"] |= patch.get("metadata", {}).get("labels", {})
        return 200, self.pods[name]

    def _poll_job(self, name: str) -> dict:
        polls = self._job_polls[name] = self._job_polls.get(name, 0) + 1
        job = self.jobs[name]
        pod_name = f"{name}-x7k2p"
        if polls >= POLLS_PENDING and pod_name not in self.pods:
            self.pods[pod_name] = pod = self._new_pod(pod_name, job)
            if self.pending_cause == "Multi-Attach":
                self.events.append(attach_failure(pod))
        phase = "Pending" if polls == POLLS_PENDING or self.pending_cause else "Running"
        if phase == "Running" and polls > POLLS_RUNNING and self.job_outcome != "hang":
            phase = "Succeeded" if self.job_outcome == "succeed" else "Failed"
        set_pod_phase(self.pods[pod_name], phase, self.pending_cause)
        self._changed.notify_all()
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
        pods = [pod for pod in self.pods.values() if selects(selector, pod["metadata"]["labels"])]
        return object_list("PodList", "v1", pods)

    def _list_events(self, selector: str) -> dict:
        wanted = [term.split("=", 1) for term in selector.split(",") if term]
        events = [e for e in self.events if all(field(e, path) == value for path, value in wanted)]
        return object_list("EventList", "v1", events)

    def _pod_log(
        self, name: str, container: str, follow: bool, timestamps: bool = False
    ) -> tuple[int, dict | Iterator[str]]:
        """A container's log; the clients stream it, so the stub serves follow=true only. With
        timestamps=true each line starts with its time, as the kubelet writes it."""
        pod = self.pods.get(name)
        if pod is None:
            return not_found("pods", "", name)
        if not follow:
            return 400, status_object(400, "BadRequest", "the stub serves logs with follow=true only")
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container not in names:
            return 400, status_object(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if pod["status"]["phase"] == "Pending":
            message = f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            return 400, status_object(400, "BadRequest", message)
        return 200, self._follow_log(pod, f"{STARTED_AT} " if timestamps else "")

    def _log(self, pod: dict) -> list[str]:
        return self.log_lines[:LINES_WHILE_RUNNING] if pod["status"]["phase"] == "Running" else self.log_lines

    def _follow_log(self, pod: dict, prefix: str = "") -> Iterator[str]:
        """What follow=true streams: the log so far, then each new line, until the container ends."""
        sent = 0
        while True:
            with self._changed:
                while not self._log_ended(pod) and len(self._log(pod)) == sent:
                    self._changed.wait()
                lines, ended = self._log(pod), self._log_ended(pod)
            yield "".join(prefix + line + "\n" for line in lines[sent:])
            sent = len(lines)
            if ended:
                return

    def _log_ended(self, pod: dict) -> bool:
        return self._stopping or pod["status"]["phase"] != "Running"

    def _poll_deployment(self, name: str) -> tuple[int, dict]:
        if name not in self.deployments:
            return not_found("deployments", "apps", name)
        deployment, statuses = self.deployments[name]
        deployment["status"] = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return 200, deployment

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # for chunked streams (and keep-alive, as the API server)

            def _respond(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                code, payload = stub.handle(self.command, self.path, body)
                self.send_response(code)
                if isinstance(payload, dict):
                    data = json.dumps(payload).encode()
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                # A stream, chunked as the API server sends a followed log: each chunk as it comes.
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in payload:
                    if chunk:
                        data = chunk.encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _respond

            def log_message(self, format: str, *args: object) -> None:
                """Keep test output clean: requests are recorded on the stub instead."""

        return Handler


def owner_job(pod: dict) -> str:
    return pod["metadata"]["ownerReferences"][0]["name"]


def set_pod_phase(pod: dict, phase: str, pending_cause: str | None = None) -> None:
    """The status the kubelet and scheduler report for a pod in this phase (Pending: for this cause)."""
    name = pod["spec"]["containers"][0]["name"]
    image = pod["spec"]["containers"][0]["image"]
    if pending_cause == "Unschedulable":
        pod["spec"].pop("nodeName", None)
        scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        pod["status"] = {"phase": phase, "conditions": [scheduled | {"message": UNSCHEDULABLE}]}
        return
    waiting = {"reason": "ContainerCreating"}
    # A container ends when the stub first reports it ended (clients read a recent end's logs only).
    ended = pod.get("status", {}).get("containerStatuses", [{}])[0].get("state", {}).get("terminated", {})
    finished = ended.get("finishedAt") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if pending_cause == "ImagePullBackOff":
        waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
    states = {
        "Pending": {"waiting": waiting},
        "Running": {"running": {"startedAt": STARTED_AT}},
        "Succeeded": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": finished}},
        "Failed": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}},
    }
    image_id = "" if phase == "Pending" else f"docker.io/library/{image}@sha256:{'ab' * 32}"
    container_status = {"name": name, "image": image, "imageID": image_id, "ready": phase == "Running"}
    container_status |= {"restartCount": 0, "started": phase == "Running", "state": states[phase]}
    pod["status"] = {"phase": phase, "hostIP": "10.0.0.5", "podIP": "10.244.0.12", "startTime": STARTED_AT}
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    pod["status"]["containerStatuses"] = [container_status]


def attach_failure(pod: dict) -> dict:
    """The event of a ReadWriteOnce volume that another node's pod holds, as the controller records it."""
    involved = {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "apiVersion": "v1"}
    involved |= {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
    metadata = meta(f"{pod['metadata']['name']}.18a3f0c2d4e5b6a7", pod["metadata"]["namespace"])
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "involvedObject": involved,
        "reason": "FailedAttachVolume",
        "message": MULTI_ATTACH,
        "type": "Warning",
        "count": 3,
        "source": {"component": "attachdetach-controller"},
        "firstTimestamp": STARTED_AT,
        "lastTimestamp": STARTED_AT,
    }


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

"""A rendered overlay played on one Docker engine: network, volumes, pods, probes, clean-up.

Kubelet's part is played too: before a pod's container starts, a one-off root container applies the
pod's fsGroup to each claim it mounts and creates missing subPath directories (fresh named volumes
are root-owned, and UID 10001 could not write to them otherwise); the pod's init containers run
first, each to a zero exit; each ConfigMap's and Secret's files wait in a host directory for the
containers that mount it (an empty one for an optional object the objects do not hold).
"""

import base64
import io
import secrets
import shutil
import tarfile
import tempfile
from pathlib import Path

import requests

from tests.support import images_docker as engine
from tests.support.images_pods import (
    VOLUME_ROOT,
    Claim,
    Pod,
    claim_setups,
    file_volume,
    pods,
    probe_port,
    run_args,
)

RUN_LABEL = "gender-classifier.test-run"
# A Job runs until its activeDeadlineSeconds, but never longer than this here.
JOB_TIMEOUT_CAP_S = 1200
DEFAULT_PROBE = {"periodSeconds": 10, "failureThreshold": 3, "initialDelaySeconds": 0}
# An init container has no deadline of its own; kubelet would retry it, here it fails the test.
INIT_TIMEOUT_S = 300


def object_files(obj: dict) -> dict[str, bytes]:
    """The files kubelet makes of a ConfigMap's data or a Secret's (base64) data."""
    if obj.get("kind") == "Secret":
        return {key: base64.b64decode(value) for key, value in obj.get("data", {}).items()}
    return {key: value.encode() for key, value in obj.get("data", {}).items()}


class Stack:
    def __init__(self, objects: list[dict]):
        self.objects = objects
        self.pods = pods(objects)
        self.run = f"gender-test-{secrets.token_hex(3)}"
        self.label = f"{RUN_LABEL}={self.run}"
        self.claims: dict[str, Claim] = {}
        self.file_dirs: dict[tuple[str, str], str] = {}
        self.started: dict[str, Pod] = {}  # container name -> its pod

    def up(self) -> None:
        """The network (the run's name) and one named volume per PersistentVolumeClaim."""
        engine.docker("network", "create", f"--label={self.label}", self.run)
        for pvc in (o for o in self.objects if o["kind"] == "PersistentVolumeClaim"):
            claim = pvc["metadata"]["name"]
            volume = f"{self.run}-{claim}"
            engine.docker("volume", "create", f"--label={self.label}", volume)
            mountpoint = engine.docker(
                "volume", "inspect", "--format", "{{.Mountpoint}}", volume
            ).stdout.strip()
            self.claims[claim] = Claim(volume, mountpoint)
        files = Path(tempfile.mkdtemp(prefix=f"{self.run}-files-"))
        files.chmod(0o755)  # the containers' user reads below it
        held = {
            (o["kind"], o["metadata"]["name"]): o
            for o in self.objects
            if o["kind"] in ("ConfigMap", "Secret")
        }
        mounted = {file_volume(v) for pod in self.pods.values() for v in pod.spec.get("volumes", [])}
        for kind, name in (set(held) | mounted) - {None}:
            folder = files / kind / name
            folder.mkdir(mode=0o755, parents=True)
            for key, value in object_files(held.get((kind, name), {})).items():
                (folder / key).write_bytes(value)
                (folder / key).chmod(0o444)
            self.file_dirs[kind, name] = str(folder)

    def down(self) -> None:
        """Remove every container, volume and the network this run made (labelled with its name),
        after printing each container's state and logs (pytest shows them when the test failed)."""
        for name in self.started:
            print(f"{name}: {engine.state(name)}\n{engine.logs(name)}")
        containers = engine.docker("ps", "--all", "--quiet", f"--filter=label={self.label}", check=False)
        if containers.stdout.split():
            engine.docker("rm", "--force", *containers.stdout.split(), check=False)
        volumes = engine.docker("volume", "ls", "--quiet", f"--filter=label={self.label}", check=False)
        if volumes.stdout.split():
            engine.docker("volume", "rm", "--force", *volumes.stdout.split(), check=False)
        engine.docker("network", "rm", self.run, check=False)
        for folder in {str(Path(d).parents[1]) for d in self.file_dirs.values()}:
            shutil.rmtree(folder, ignore_errors=True)

    def start(self, owner: str) -> str:
        """Run the init containers of workload `owner` ("Kind/name") to completion, then start its
        container detached; returns the container's name."""
        pod = self.pods[owner]
        for init in pod.init_pods():
            name = self._start(init, f"{self.run}-{owner.split('/')[1]}-{init.container['name']}")
            code = engine.wait_exit(name, INIT_TIMEOUT_S)
            if code != 0:
                engine.fail_with_logs(name, f"{init.owner} exited with {code}")
        return self._start(pod, f"{self.run}-{owner.split('/')[1]}")

    def _start(self, pod: Pod, name: str) -> str:
        self._prepare_claims(pod)
        engine.docker(*run_args(pod, name, self.run, [self.label], self.objects, self.claims, self.file_dirs))
        self.started[name] = pod
        return name

    def _prepare_claims(self, pod: Pod) -> None:
        for claim, script in claim_setups(pod).items():
            engine.docker(
                "run",
                "--rm",
                "--user=0:0",
                "--network=none",
                f"--label={self.label}",
                f"--mount=type=volume,src={self.claims[claim].volume},dst={VOLUME_ROOT}",
                "--entrypoint=sh",
                pod.container["image"],
                "-c",
                script,
            )

    def run_to_completion(self, owner: str) -> str:
        """Run a Job's or CronJob's container; fails with its logs unless it exits 0 in time."""
        name = self.start(owner)
        code = engine.wait_exit(name, self._job_timeout(owner))
        if code != 0:
            engine.fail_with_logs(name, f"{owner} exited with {code}")
        return name

    def run_pod_to_completion(self, pod: Pod, name: str, timeout: float) -> str:
        """Run a pod that no rendered workload templates (one an operator makes) to a zero exit."""
        name = self._start(pod, f"{self.run}-{name}")
        code = engine.wait_exit(name, timeout)
        if code != 0:
            engine.fail_with_logs(name, f"{pod.owner} exited with {code}")
        return name

    def write_claim(self, claim: str, path: str, files: dict[str, bytes], image: str, owner: str) -> None:
        """Put files under `path` of a claim's volume, owned by `owner` ("uid:gid"), as a loader would."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, content in files.items():
                member = tarfile.TarInfo(name)
                member.size, member.mode = len(content), 0o644
                tar.addfile(member, io.BytesIO(content))
        target = f"{VOLUME_ROOT}/{path}"
        engine.docker(
            "run", "--rm", "--interactive", "--user=0:0", "--network=none", f"--label={self.label}",
            f"--mount=type=volume,src={self.claims[claim].volume},dst={VOLUME_ROOT}",
            "--entrypoint=sh", image, "-c",
            f"mkdir -p {target} && tar -C {target} -xf - && chown -R {owner} {target}",
            text=False, stdin=buffer.getvalue(),
        )  # fmt: skip

    def _job_timeout(self, owner: str) -> float:
        kind, name = owner.split("/")
        obj = next(o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name)
        job = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
        return min(job.get("activeDeadlineSeconds", JOB_TIMEOUT_CAP_S), JOB_TIMEOUT_CAP_S)

    def url(self, name: str) -> str:
        """Loopback URL of the container's first port."""
        return engine.published_url(name, self.started[name].container["ports"][0]["containerPort"])

    def wait_probe(self, name: str, kind: str, timeout: float | None = None) -> requests.Response:
        """Poll the container's httpGet probe `kind` (e.g. "startupProbe") until it passes; by default
        as long as kubelet would before giving up (initialDelay + period x failureThreshold)."""
        container = self.started[name].container
        probe = container[kind]
        if timeout is None:
            timing = DEFAULT_PROBE | probe
            timeout = timing["initialDelaySeconds"] + timing["periodSeconds"] * timing["failureThreshold"]
        url = engine.published_url(name, probe_port(container, probe)) + probe["httpGet"]["path"]
        return engine.wait_http(name, url, timeout)

    def read_claim(self, claim: str, path: str, image: str) -> dict[str, bytes]:
        """The regular files under `path` of a claim's volume (relative name -> content)."""
        archive = engine.docker(
            "run",
            "--rm",
            "--network=none",
            f"--label={self.label}",
            f"--mount=type=volume,src={self.claims[claim].volume},dst={VOLUME_ROOT},readonly",
            "--entrypoint=tar",
            image,
            "-C",
            f"{VOLUME_ROOT}/{path}",
            "-cf",
            "-",
            ".",
            text=False,
        )
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            return {
                m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
            }

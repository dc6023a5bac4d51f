"""The rendered manifests' pods as `docker run` arguments, one small function per concept.

Docker plays the cluster: a network on which containers answer by their Service names, named
volumes for the PersistentVolumeClaims, tmpfs for emptyDirs, read-only bind mounts of the
ConfigMaps' and Secrets' files (an optional one that does not exist is an empty directory, as kubelet
mounts it), init containers run to completion before the pod's container. A field this
translation does not know fails the test rather than being dropped silently, so the containers run
as the manifests say.
"""

import shlex
from dataclasses import dataclass

import pytest

from tests.support.manifests import pod_templates, selects

# Fields with no effect a single container on one engine could show (scheduling, restarts,
# service accounts); probes and lifecycle hooks are read by the test itself.
IGNORED_POD_FIELDS = {
    "restartPolicy",
    "automountServiceAccountToken",
    "serviceAccountName",
    "terminationGracePeriodSeconds",
    "affinity",
    "nodeSelector",
    "tolerations",
    "topologySpreadConstraints",
    "priorityClassName",
}
POD_FIELDS = {"containers", "initContainers", "volumes", "securityContext", *IGNORED_POD_FIELDS}
IGNORED_CONTAINER_FIELDS = {
    "name",
    "imagePullPolicy",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "lifecycle",
    "terminationMessagePolicy",
}
CONTAINER_FIELDS = {
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    *IGNORED_CONTAINER_FIELDS,
}
# Where a volume-preparation container mounts a claim.
VOLUME_ROOT = "/volume"
MEMORY_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


@dataclass(frozen=True)
class Pod:
    owner: str  # "Kind/name" of the workload
    labels: dict
    spec: dict

    @property
    def container(self) -> dict:
        return self.spec["containers"][0]

    def init_pods(self) -> list["Pod"]:
        """Each init container as a pod of its own (same volumes and security context), in order."""
        spec = {key: value for key, value in self.spec.items() if key != "initContainers"}
        return [
            Pod(f"{self.owner} init container {init['name']}", self.labels, {**spec, "containers": [init]})
            for init in self.spec.get("initContainers", [])
        ]


@dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim played by a Docker named volume."""

    volume: str
    mountpoint: str  # on the engine's host, for subPath bind mounts


def pods(objects: list[dict]) -> dict[str, Pod]:
    """Every pod template of the rendered objects by its owner ("Kind/name")."""
    return {
        owner: Pod(owner, template["metadata"].get("labels", {}), template["spec"])
        for owner, template in pod_templates(objects)
    }


def configmaps(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def check_supported(pod: Pod) -> None:
    problems = [f"pod field {field}" for field in sorted(set(pod.spec) - POD_FIELDS)]
    if len(pod.spec["containers"]) != 1:
        problems.append(f"{len(pod.spec['containers'])} containers (one is played)")
    problems += [f"container field {field}" for field in sorted(set(pod.container) - CONTAINER_FIELDS)]
    problems += [
        f"volume {v['name']} (only persistentVolumeClaim, emptyDir and a whole configMap or secret)"
        for v in pod.spec.get("volumes", [])
        if not _playable(v)
    ]
    if problems:
        pytest.fail(f"{pod.owner}: the Docker translation does not handle: {', '.join(problems)}")


def file_volume(volume: dict) -> tuple[str, str] | None:
    """(kind, name) of the ConfigMap or Secret whose files a volume holds; None for other volumes."""
    if "configMap" in volume:
        return "ConfigMap", volume["configMap"]["name"]
    if "secret" in volume:
        return "Secret", volume["secret"]["secretName"]
    return None


def _playable(volume: dict) -> bool:
    # All its keys as files (the play mounts them read-only, mode 0444, whatever defaultMode says).
    if "configMap" in volume:
        return set(volume["configMap"]) <= {"name", "defaultMode", "optional"}
    if "secret" in volume:
        return set(volume["secret"]) <= {"secretName", "defaultMode", "optional"}
    return bool({"persistentVolumeClaim", "emptyDir"} & set(volume))


def command_args(container: dict) -> tuple[list[str], list[str]]:
    """(options before the image, words after it): `command` replaces the image's ENTRYPOINT and
    CMD, `args` alone replace CMD."""
    command, args = container.get("command", []), container.get("args", [])
    if command:
        return [f"--entrypoint={command[0]}"], [*command[1:], *args]
    return [], list(args)


def resolved_env(
    container: dict, maps: dict[str, dict], secrets: dict[str, dict] | None = None
) -> dict[str, str]:
    """envFrom first, then env (which wins), with ConfigMap references resolved and Secret
    references from `secrets` (name -> data: the values a test gives for the Secrets it plays)."""
    values = {}
    for source in container.get("envFrom", []):
        if "configMapRef" not in source:
            pytest.fail(f"envFrom {source}: only configMapRef is played")
        data = _configmap(maps, source["configMapRef"]["name"])
        values.update({source.get("prefix", "") + key: value for key, value in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
            continue
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref, data = source["configMapKeyRef"], _configmap(maps, source["configMapKeyRef"]["name"])
        elif "secretKeyRef" in source and secrets is not None:
            ref = source["secretKeyRef"]
            data = secrets.get(ref["name"], {})
        else:
            pytest.fail(f"env {var['name']}: only value, configMapKeyRef and a given secretKeyRef are played")
        if ref["key"] not in data:
            pytest.fail(f"env {var['name']}: {ref['name']} has no key {ref['key']} here")
        values[var["name"]] = data[ref["key"]]
    return values


def env_args(container: dict, maps: dict[str, dict]) -> list[str]:
    return [f"--env={name}={value}" for name, value in resolved_env(container, maps).items()]


def _configmap(maps: dict[str, dict], name: str) -> dict:
    if name not in maps:
        pytest.fail(f"ConfigMap {name} is referenced but not rendered")
    return maps[name]


def user_args(pod: Pod) -> list[str]:
    """runAsUser/runAsGroup (the container's override the pod's); fsGroup and supplementalGroups
    become supplementary groups, as kubelet adds them."""
    pod_context, context = pod.spec.get("securityContext", {}), pod.container.get("securityContext", {})

    def setting(key: str):
        return context.get(key, pod_context.get(key))

    user, group = setting("runAsUser"), setting("runAsGroup")
    if setting("runAsNonRoot") and user in (None, 0):
        pytest.fail(f"{pod.owner}: runAsNonRoot needs a numeric non-zero runAsUser to be played")
    args = [f"--user={user}" + (f":{group}" if group is not None else "")] if user is not None else []
    groups = [pod_context.get("fsGroup"), *pod_context.get("supplementalGroups", [])]
    return args + [f"--group-add={g}" for g in groups if g is not None]


def security_args(container: dict) -> list[str]:
    context = container.get("securityContext", {})
    args = ["--read-only"] if context.get("readOnlyRootFilesystem") else []
    if context.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    capabilities = context.get("capabilities", {})
    args += [f"--cap-drop={c}" for c in capabilities.get("drop", [])]
    args += [f"--cap-add={c}" for c in capabilities.get("add", [])]
    return args


def resource_args(container: dict) -> list[str]:
    """Limits only: requests steer scheduling, which one engine does not do."""
    limits = container.get("resources", {}).get("limits", {})
    args = [f"--cpus={cpu_cores(limits['cpu'])}"] if "cpu" in limits else []
    if "memory" in limits:
        args.append(f"--memory={memory_bytes(limits['memory'])}")
    return args


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    text = str(quantity)
    for suffix, factor in MEMORY_SUFFIXES.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def port_args(container: dict) -> list[str]:
    """Every container port published on a free loopback port (read back with `docker port`)."""
    return [f"--publish=127.0.0.1::{port['containerPort']}" for port in container.get("ports", [])]


def probe_port(container: dict, probe: dict) -> int:
    """The container port an httpGet probe targets (a port name is looked up in `ports`)."""
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    if not named:
        pytest.fail(f"probe port {port!r} names no container port")
    return named[0]


def alias_args(pod: Pod, services: list[dict]) -> list[str]:
    """The names of the Services selecting this pod: other containers reach it by them."""
    return [
        f"--network-alias={service['metadata']['name']}"
        for service in services
        if selects({"matchLabels": service["spec"]["selector"]}, pod.labels)
    ]


def mount_args(pod: Pod, claims: dict[str, Claim], file_dirs: dict[tuple[str, str], str]) -> list[str]:
    volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
    return [
        _mount(mount, volumes[mount["name"]], claims, file_dirs)
        for mount in pod.container.get("volumeMounts", [])
    ]


def _mount(mount: dict, volume: dict, claims: dict[str, Claim], file_dirs: dict[tuple[str, str], str]) -> str:
    path = mount["mountPath"]
    if "emptyDir" in volume:
        return f"--tmpfs={path}:{tmpfs_options(volume['emptyDir'])}"
    if (source := file_volume(volume)) is not None:
        if "subPath" in mount:
            pytest.fail(f"volume {volume['name']}: a subPath of a {source[0]} is not played")
        return f"--mount=type=bind,src={file_dirs[source]},dst={path},readonly"
    pvc = volume["persistentVolumeClaim"]
    claim = claims[pvc["claimName"]]
    read_only = ",readonly" if mount.get("readOnly") or pvc.get("readOnly") else ""
    if "subPath" in mount:
        # Engines before API 1.45 cannot mount a volume's subdirectory: bind it from the host.
        return f"--mount=type=bind,src={claim.mountpoint}/{mount['subPath']},dst={path}{read_only}"
    return f"--mount=type=volume,src={claim.volume},dst={path}{read_only}"


def tmpfs_options(empty_dir: dict) -> str:
    """An emptyDir is a world-writable directory that may hold executables; sizeLimit bounds it."""
    options = ["exec", "mode=1777"]
    if "sizeLimit" in empty_dir:
        options.append(f"size={memory_bytes(empty_dir['sizeLimit'])}")
    return ",".join(options)


def claim_setups(pod: Pod) -> dict[str, str]:
    """Per claim, the shell script kubelet's work amounts to before the container starts: fsGroup
    ownership (group-owned, group-writable, setgid directories; with OnRootMismatch only when the
    root's group differs), and missing subPath directories created with the mode of the volume's root."""
    context = pod.spec.get("securityContext", {})
    fs_group, policy = context.get("fsGroup"), context.get("fsGroupChangePolicy", "Always")
    claim_of = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod.spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    scripts: dict[str, list[str]] = {claim: [] for claim in claim_of.values()}
    if fs_group is not None:
        chown = (
            f"chgrp -R {fs_group} {VOLUME_ROOT} && chmod -R g+rwX {VOLUME_ROOT}"
            f" && find {VOLUME_ROOT} -type d -exec chmod g+s {{}} +"
        )
        if policy == "OnRootMismatch":
            chown = f'[ "$(stat -c %g {VOLUME_ROOT})" = {fs_group} ] || {{ {chown}; }}'
        for steps in scripts.values():
            steps.append(chown)
    for mount in pod.container.get("volumeMounts", []):
        if "subPath" in mount and mount["name"] in claim_of:
            sub = shlex.quote(f"{VOLUME_ROOT}/{mount['subPath']}")
            scripts[claim_of[mount["name"]]].append(
                f"{{ [ -d {sub} ] || {{ mkdir -p {sub} && chmod --reference={VOLUME_ROOT} {sub}; }}; }}"
            )
    return {claim: " && ".join(steps) for claim, steps in scripts.items() if steps}


def run_args(
    pod: Pod,
    name: str,
    network: str,
    labels: list[str],
    objects: list[dict],
    claims: dict[str, Claim],
    file_dirs: dict[tuple[str, str], str],
) -> list[str]:
    """`docker run` arguments for the pod's container, detached (`file_dirs`: each ConfigMap's and
    Secret's files in a host directory, by (kind, name))."""
    check_supported(pod)
    entrypoint, trailing = command_args(pod.container)
    services = [o for o in objects if o["kind"] == "Service"]
    return [
        "run",
        "--detach",
        f"--name={name}",
        f"--network={network}",
        *(f"--label={label}" for label in labels),
        *alias_args(pod, services),
        *user_args(pod),
        *security_args(pod.container),
        *resource_args(pod.container),
        *env_args(pod.container, configmaps(objects)),
        *mount_args(pod, claims, file_dirs),
        *port_args(pod.container),
        *entrypoint,
        pod.container["image"],
        *trailing,
    ]


def spark_driver_pod(app: dict, master: str) -> Pod:
    """The driver pod the Spark Operator makes of a SparkApplication (image, the driver's arguments of
    the image's entrypoint, environment, volumes, user), with its executors played by threads of the
    driver (`master`, such as local[2]) instead of pods of their own."""
    spec, driver = app["spec"], app["spec"]["driver"]
    arguments = ["driver", "--master", master, spec["mainApplicationFile"], *spec.get("arguments", [])]
    container = {
        "name": "spark-kubernetes-driver",
        "image": driver.get("image", spec["image"]),
        "args": arguments,
        **{
            key: driver[key] for key in ("env", "envFrom", "volumeMounts", "securityContext") if key in driver
        },
    }
    pod_spec = {"containers": [container], "volumes": spec.get("volumes", [])}
    if "podSecurityContext" in driver:
        pod_spec["securityContext"] = driver["podSecurityContext"]
    return Pod(f"SparkApplication/{app['metadata']['name']} driver", driver.get("labels", {}), pod_spec)

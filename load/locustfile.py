"""Realistic traffic for the prediction API, and the load gate that fails a run loudly.

Run through `make load`. Each simulated client mostly asks for single predictions, sometimes
for a batch, and now and then sends a deliberately invalid request: those count as successes
only when answered with the documented 4xx status and error body. At the end the run's totals
are checked against load/thresholds.toml; any breach is logged and makes Locust exit with 1.

Custom arguments (also as environment variables):
  --users-csv / LOCUST_USERS_CSV    users.csv (code, company, name, gender, age) to draw
                                    requests from; by default a small sample of users and
                                    their trips is generated with `python -m model.sample_data`.
  --thresholds / LOCUST_THRESHOLDS  the thresholds file (default load/thresholds.toml).
  --traffic / LOCUST_TRAFFIC        what the users look like:
                                    mixed (default): the users as drawn, half of them without
                                      their travel aggregates, as clients that do not send them;
                                    training: the users exactly as drawn, the training
                                      distribution (no drift alert should fire);
                                    shifted: every user 18 to 22 years old with a first name no
                                      statistics list, a drift drill (the drift alerts fire).
"""

import functools
import json
import logging
import random
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar, NamedTuple

from locust import FastHttpUser, between, events, task
from locust.runners import WorkerRunner

from load.thresholds import DEFAULT_PATH, RunTotals, Thresholds, breaches
from model.contract import FIELD_BY_NAME, TRAVEL_FIELDS
from model.data import feature_columns, load_dataset, users_with_travel
from model.features import column_records

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
PREDICT_PATH = "/predict_gender"
GENDERS = frozenset({"male", "female"})
# The generated sample used when no users CSV is given.
SAMPLE_USERS = 500
SAMPLE_SEED = 7
BATCH_SIZE_RANGE = (10, 100)
# Share of instances that carry travel aggregates (the rest are name/age/company only).
TRAVEL_SHARE = 0.5
AGE_LIMIT = FIELD_BY_NAME["age"].maximum
TRAFFIC = ("mixed", "training", "shifted")
SHIFTED_AGES = (18, 22)

log = logging.getLogger("load")


class InvalidRequest(NamedTuple):
    body: bytes
    content_type: str
    status: int


JSON = "application/json"
# Requests the API must refuse, with the status it documents for each.
INVALID_REQUESTS = {
    "invalid: malformed json": InvalidRequest(b'{"name": "Ana Souza", "age": ', JSON, 400),
    "invalid: unknown field": InvalidRequest(
        json.dumps({"name": "Ana Souza", "shoe_size": 38}).encode(), JSON, 422
    ),
    "invalid: age out of range": InvalidRequest(
        json.dumps({"name": "Ana Souza", "age": AGE_LIMIT + 1}).encode(), JSON, 422
    ),
    "invalid: wrong content type": InvalidRequest(b"name=Ana+Souza&age=31", "text/plain", 415),
}


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument(
        "--users-csv", env_var="LOCUST_USERS_CSV", default="", help="users.csv to draw requests from"
    )
    parser.add_argument(
        "--traffic",
        env_var="LOCUST_TRAFFIC",
        choices=TRAFFIC,
        default="mixed",
        help="the users: mixed, training or shifted (see the module's help)",
    )
    parser.add_argument(
        "--thresholds",
        env_var="LOCUST_THRESHOLDS",
        default=str(DEFAULT_PATH),
        help="thresholds of the load gate",
    )


def read_profiles(
    users_csv: Path, hotels_csv: Path | None = None, flights_csv: Path | None = None
) -> list[dict]:
    """Request bodies: each user's input-contract fields (with travel aggregates when trips are given),
    read and validated by the project's own loaders; missing values are left out, as a client would."""
    users = users_with_travel(load_dataset(users_csv, hotels_csv, flights_csv))
    profiles = [
        {field: value for field, value in user.items() if value == value}  # value != value: NaN
        for user in column_records(feature_columns(users))
    ]
    if not profiles:
        raise ValueError(f"{users_csv}: no users")
    return profiles


def sample_profiles() -> list[dict]:
    """Generate users and their trips with the project's own sample-data generator."""
    with tempfile.TemporaryDirectory(prefix="gender-load-") as out:
        command = [sys.executable, "-m", "model.sample_data", "--out", out]
        command += ["--users", str(SAMPLE_USERS), "--seed", str(SAMPLE_SEED)]
        subprocess.run(command, cwd=CHECKOUT_DIR, check=True, stdout=subprocess.DEVNULL)
        return read_profiles(*(Path(out) / f"{name}.csv" for name in ("users", "hotels", "flights")))


def unlisted_first_name(rng: random.Random) -> str:
    """A first name no statistics list: consonants only, which no language's names are."""
    consonants = "".join(sorted(set(string.ascii_lowercase) - set("aeiouy")))
    return "".join(rng.choice(consonants) for _ in range(7)).capitalize()


def shifted(profile: dict, rng: random.Random) -> dict:
    """The profile as a population the model was not trained on: young, with unknown first names."""
    surname = profile["name"].split()[-1] if profile.get("name") else "Smith"
    return profile | {"name": f"{unlisted_first_name(rng)} {surname}", "age": rng.randint(*SHIFTED_AGES)}


def json_body(response) -> dict:
    """The response's JSON object, or {} when it is not one (then the checks report what is missing)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem_with_prediction(prediction) -> str | None:
    """Why one prediction does not match the API's contract, or None when it does."""
    if not isinstance(prediction, dict) or prediction.get("gender") not in GENDERS:
        return f"no gender in {prediction!r:.200}"
    probability = prediction.get("probability")
    if not isinstance(probability, float | int) or not 0 <= probability <= 1:
        return f"probability {probability!r} outside [0, 1]"
    return None


class PredictUser(FastHttpUser):
    """A client of the API: mostly single predictions, some batches, a few invalid requests."""

    wait_time = between(0.1, 0.5)
    profiles: ClassVar[list[dict]] = []
    traffic: ClassVar[str] = "mixed"

    def instance(self) -> dict:
        profile = random.choice(self.profiles)
        if self.traffic == "training":
            return profile
        if self.traffic == "shifted":
            return shifted(profile, random)
        if random.random() < TRAVEL_SHARE:
            return profile
        return {field: value for field, value in profile.items() if field not in TRAVEL_FIELDS}

    def _post_json(self, body, name: str):
        return self.client.post(PREDICT_PATH, json=body, name=name, catch_response=True)

    @task(85)
    def predict_one(self):
        with self._post_json(self.instance(), "predict: one") as response:
            problem = self._status_problem(response, 200) or problem_with_prediction(json_body(response))
            self._judge(response, problem)

    @task(10)
    def predict_batch(self):
        size = random.randint(*BATCH_SIZE_RANGE)
        with self._post_json(
            {"instances": [self.instance() for _ in range(size)]}, "predict: batch"
        ) as response:
            problem = self._status_problem(response, 200)
            if problem is None:
                predictions = json_body(response).get("predictions")
                if not isinstance(predictions, list) or len(predictions) != size:
                    problem = f"expected {size} predictions, got {response.text[:200]}"
                else:
                    problem = next(filter(None, map(problem_with_prediction, predictions)), None)
            self._judge(response, problem)

    @task(5)
    def invalid_request(self):
        name, request = random.choice(list(INVALID_REQUESTS.items()))
        headers = {"Content-Type": request.content_type}
        with self.client.post(
            PREDICT_PATH, data=request.body, headers=headers, name=name, catch_response=True
        ) as response:
            problem = self._status_problem(response, request.status)
            error = json_body(response).get("error")
            if problem is None and not (isinstance(error, dict) and isinstance(error.get("code"), str)):
                problem = f"no error code in {response.text[:200]}"
            self._judge(response, problem)

    @staticmethod
    def _status_problem(response, expected: int) -> str | None:
        if response.status_code == expected:
            return None
        return f"expected {expected}, got {response.status_code}: {(response.text or '')[:200]}"

    @staticmethod
    def _judge(response, problem: str | None):
        if problem is None:
            response.success()
        else:
            response.failure(problem)


def enforce_thresholds(limits: Thresholds, environment, **_):
    """Quitting hook: a run that breaks a threshold exits with 1, naming each breach."""
    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the whole run
    total = environment.stats.total
    totals = RunTotals(
        requests=total.num_requests,
        failure_ratio=total.fail_ratio,
        p95_ms=total.get_response_time_percentile(0.95) or 0.0,
        p99_ms=total.get_response_time_percentile(0.99) or 0.0,
        rps=total.total_rps,
    )
    failed = breaches(limits, totals)
    for message in failed:
        log.error("load gate: threshold failed: %s", message)
    if failed:
        environment.process_exit_code = 1
    else:
        log.info("load gate passed: %s", totals)


@events.init.add_listener
def _prepare(environment, **_):
    """Read the thresholds and the users up front, so that a bad file fails before any load."""
    options = environment.parsed_options
    limits = Thresholds.read(options.thresholds)
    environment.events.quitting.add_listener(functools.partial(enforce_thresholds, limits))
    PredictUser.profiles = read_profiles(Path(options.users_csv)) if options.users_csv else sample_profiles()
    PredictUser.traffic = options.traffic

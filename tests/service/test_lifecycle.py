"""The service over its life: a model appearing, new versions swapped in under load, a tampered version
or one of another model format refused, and SIGTERM with requests in flight. Each test runs its own
gunicorn on its own model volume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from model import signing
from model.artifact import CARD_FILE, CURRENT, MODEL_FILE, VERSIONS, current_version
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import new_key_pair, session_key
from tests.fixtures.service import API_APP, GUNICORN, publish_copy, publish_copy_without_card, wait_for
from tests.support.forgery import forge_version, sign
from tests.support.metrics import sample_value
from tests.support.polling import wait_until
from tests.support.raw_http import PartialRequest
from tests.support.users import ORIGINAL_EXAMPLE

pytestmark = pytest.mark.slow

FAST_RELOAD_S = 0.1
WORKERS = 2
PUBLISHED_VERSIONS = 20


def predict(session: requests.Session, url: str, body: dict) -> requests.Response:
    return session.post(f"{url}/predict_gender", json=body, timeout=10)


def tree(directory: Path) -> dict[str, tuple[int, float]]:
    return {
        str(p.relative_to(directory)): (p.lstat().st_size, p.lstat().st_mtime) for p in directory.rglob("*")
    }


def test_every_worker_serves_a_first_model_at_once(start_service, sample_model_dir, tmp_path):
    """No worker answers 503 once a model exists, even long before its next periodic check."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    server = start_service(model_dir=model_dir, reload_interval_s=3600)
    assert requests.get(f"{server.url}/readyz").status_code == 503

    version = publish_copy(sample_model_dir, model_dir)
    with requests.Session() as session:
        answers = [predict(session, server.url, ORIGINAL_EXAMPLE) for _ in range(4 * WORKERS)]
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert {a.json()["model_version"] for a in answers} == {version}


def test_becomes_ready_by_itself_once_a_model_is_published(start_service, sample_model_dir, tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    server = start_service(model_dir=model_dir, reload_interval_s=FAST_RELOAD_S)

    assert requests.get(f"{server.url}/healthz").status_code == 200
    assert requests.get(f"{server.url}/readyz").status_code == 503
    assert requests.get(f"{server.url}/version").status_code == 503
    assert requests.get(f"{server.url}/model-card").status_code == 503
    waiting = requests.post(f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE)
    assert waiting.status_code == 503
    assert waiting.json()["error"]["code"] == "model_unavailable"
    assert "no verified model" in waiting.json()["error"]["message"].lower()

    version = publish_copy(sample_model_dir, model_dir)
    before = tree(model_dir)
    wait_for(server, "/readyz", timeout_s=5)
    answer = requests.post(f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE)
    assert answer.status_code == 200
    assert answer.json()["model_version"] == version
    assert tree(model_dir) == before, "the service must never write to the model volume"


def test_twenty_versions_swap_in_under_load_without_a_failed_request(
    start_service, sample_model_dir, tmp_path
):
    model_dir = tmp_path / "models"
    published = [publish_copy(sample_model_dir, model_dir)]
    server = start_service(model_dir=model_dir, reload_interval_s=FAST_RELOAD_S, workers=WORKERS)
    wait_for(server, "/readyz")

    stop = threading.Event()
    seen: list[tuple[int, str | None, bool]] = []  # (status, version, batch answers agree)
    failures: list[Exception] = []
    batch = {"instances": [ORIGINAL_EXAMPLE, {"name": "Mary Jones"}, {"name": "Mr John Brown"}]}

    def client(body: dict) -> None:
        session = requests.Session()
        deadline = time.monotonic() + 60  # bounded even if the publisher hangs
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = predict(session, server.url, body)
            except requests.RequestException as error:
                failures.append(error)
                continue
            answer = response.json() if response.ok else {}
            agree = all(p["model_version"] == answer["model_version"] for p in answer.get("predictions", []))
            seen.append((response.status_code, answer.get("model_version"), agree))

    def recently_seen() -> set[str | None]:
        return {version for _, version, _ in seen[-20:]}

    clients = [
        threading.Thread(target=client, args=(body,)) for body in (ORIGINAL_EXAMPLE, batch, ORIGINAL_EXAMPLE)
    ]
    for thread in clients:
        thread.start()
    try:
        for _ in range(PUBLISHED_VERSIONS):
            published.append(publish_copy(sample_model_dir, model_dir))
            time.sleep(3 * FAST_RELOAD_S)
        wait_until(
            lambda: recently_seen() == {published[-1]},
            5,
            FAST_RELOAD_S,
            lambda: f"the clients still see {recently_seen()}, not only {published[-1]}",
        )
    finally:
        stop.set()
        for thread in clients:
            thread.join()

    assert not failures
    assert len(seen) > 100
    assert [status for status, _, _ in seen if status != 200] == []
    versions = [version for _, version, _ in seen]
    assert set(versions) <= set(published)
    assert all(agree for _, _, agree in seen), "one answer never mixes two model versions"
    assert len(set(versions)) >= PUBLISHED_VERSIONS // 2, "versions were really swapped in while serving"
    assert versions[-1] == published[-1]


def tampered(metadata: dict, pickle_path: Path) -> None:
    """model.pkl no longer matches the sha256 in model.json."""
    with open(pickle_path, "ab") as pickle:
        pickle.write(b"\x00 payload")


def card_tampered(metadata: dict, pickle_path: Path) -> None:
    """model_card.md no longer matches the sha256 in model.json."""
    card = pickle_path.with_name(CARD_FILE)
    card.write_text(card.read_text().replace("## Known limitations", "## No limitations"))


def of_an_older_format(metadata: dict, pickle_path: Path) -> None:
    """As a release before model formats wrote it (as the model of an upgraded API's last release)."""
    del metadata["format"]


def publish_bad(model_dir: Path, spoil) -> str:
    """A copy of the current version, spoiled by `spoil(metadata, model.pkl path)`, made current."""
    good = current_version(model_dir)
    bad = f"{good}-bad"
    shutil.copytree(model_dir / VERSIONS / good, model_dir / VERSIONS / bad)
    metadata = json.loads((model_dir / VERSIONS / bad / "model.json").read_text()) | {"version": bad}
    spoil(metadata, model_dir / VERSIONS / bad / MODEL_FILE)
    (model_dir / VERSIONS / bad / "model.json").write_text(json.dumps(metadata))
    sign(model_dir / VERSIONS / bad, session_key())  # by the trainer: spoiled, not forged
    os.symlink(f"{VERSIONS}/{bad}", model_dir / "pointer")
    os.replace(model_dir / "pointer", model_dir / CURRENT)
    return bad


def corrupt(model_dir: Path, marker: Path) -> str:
    return publish_bad(model_dir, tampered)


def corrupt_card(model_dir: Path, marker: Path) -> str:
    return publish_bad(model_dir, card_tampered)


def older_format(model_dir: Path, marker: Path) -> str:
    return publish_bad(model_dir, of_an_older_format)


def forged(model_dir: Path, marker: Path) -> str:
    """The issue's attack: a version written straight into the volume, consistent but unsigned."""
    return forge_version(model_dir, marker)


def forged_and_signed_by_the_attacker(model_dir: Path, marker: Path) -> str:
    attacker = signing.signing_key(*new_key_pair(marker.parent / "attacker"), create=False)
    return forge_version(model_dir, marker, attacker)


@pytest.mark.parametrize(
    ("publish", "reason", "outcome"),
    [
        (corrupt, "sha256", "refused"),
        (corrupt_card, "model_card.md sha256", "refused"),
        (older_format, "model format 1", "refused"),
        (forged, "unsigned", "untrusted"),
        (forged_and_signed_by_the_attacker, "signed by untrusted key", "untrusted"),
    ],
)
def test_a_bad_version_is_refused_once_and_the_old_model_keeps_serving(
    start_service, sample_model_dir, tmp_path, publish, reason, outcome
):
    model_dir = tmp_path / "models"
    good = publish_copy(sample_model_dir, model_dir)
    server = start_service(model_dir=model_dir, reload_interval_s=FAST_RELOAD_S, workers=WORKERS)
    wait_for(server, "/readyz")

    marker = tmp_path / "the-attackers-code-ran"
    bad = publish(model_dir, marker)

    def refused(counted: str = outcome) -> float:
        text = requests.get(f"{server.url}/metrics").text
        return sample_value(text, "gender_api_model_loads_total", outcome=counted)

    wait_until(
        lambda: refused() >= WORKERS, 10, FAST_RELOAD_S, lambda: f"{refused()} of {WORKERS} workers refused"
    )
    assert refused() == WORKERS  # each worker checked it once
    time.sleep(10 * FAST_RELOAD_S)
    assert refused() == WORKERS, "a refused version is remembered, not retried every interval"
    assert refused(({"refused", "untrusted"} - {outcome}).pop()) == 0, "an attack is told from a corrupt file"
    assert not marker.exists()

    for _ in range(10):
        answer = requests.post(f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == good
    assert requests.get(f"{server.url}/readyz").status_code == 200
    refusals = [json.loads(line) for line in server.log().splitlines() if "refused" in line]
    assert refusals and refusals[0]["model_version"] == bad and reason in refusals[0]["reason"]
    assert refusals[0]["outcome"] == outcome

    recovered = publish_copy(sample_model_dir, model_dir)

    def serving() -> str:
        return requests.get(f"{server.url}/version").json()["version"]

    wait_until(
        lambda: serving() == recovered,
        5,
        FAST_RELOAD_S,
        lambda: f"still serving {serving()}, not the new good version {recovered}",
    )


def test_the_model_card_follows_a_hot_swap_and_a_version_without_one_answers_404(
    start_service, sample_model_dir, tmp_path
):
    model_dir = tmp_path / "models"
    first = publish_copy(sample_model_dir, model_dir)
    server = start_service(model_dir=model_dir, reload_interval_s=FAST_RELOAD_S, workers=WORKERS)
    wait_for(server, "/readyz")

    def card() -> requests.Response:
        return requests.get(f"{server.url}/model-card")

    def serving(version: str) -> bool:
        # Fresh connections spread over the workers: each must have swapped.
        return all(
            requests.get(f"{server.url}/version").json()["version"] == version for _ in range(4 * WORKERS)
        )

    assert card().text == (model_dir / VERSIONS / first / CARD_FILE).read_text()
    second = publish_copy(sample_model_dir, model_dir)
    wait_until(lambda: serving(second), 5, FAST_RELOAD_S, f"{second} was never swapped in")
    assert f"# gender-classifier {second}" in card().text
    assert card().text == (model_dir / VERSIONS / second / CARD_FILE).read_text()

    cardless = publish_copy_without_card(sample_model_dir, model_dir)
    wait_until(lambda: serving(cardless), 5, FAST_RELOAD_S, f"{cardless} was never swapped in")
    missing = card()
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_card_not_found"
    assert cardless in missing.json()["error"]["message"]


def test_without_trusted_keys_it_stays_unready_saying_so_and_serves_once_they_appear(
    start_service, sample_model_dir, tmp_path
):
    model_dir = tmp_path / "models"
    version = publish_copy(sample_model_dir, model_dir)
    trusted_dir = tmp_path / "trusted"  # the ConfigMap's mount, not there yet
    server = start_service(
        model_dir=model_dir, trusted_keys_dir=trusted_dir, reload_interval_s=FAST_RELOAD_S, workers=WORKERS
    )
    answer = requests.get(f"{server.url}/readyz")
    assert (
        answer.status_code == 503 and f"no trusted keys in {trusted_dir}" in answer.json()["error"]["message"]
    )
    assert f"no trusted keys in {trusted_dir}" in server.log()

    shutil.copytree(os.environ["GENDER_TRUSTED_KEYS_DIR"], trusted_dir)
    wait_for(server, "/readyz", timeout_s=5)
    assert requests.get(f"{server.url}/version").json()["version"] == version


def test_sigterm_lets_in_flight_requests_finish_and_turns_readiness_off(
    start_service, sample_model_dir, tmp_path
):
    model_dir = tmp_path / "models"
    version = publish_copy(sample_model_dir, model_dir)
    # A half-sent /readyz and a half-sent prediction are in flight beside the load.
    server = start_service(model_dir=model_dir, workers=WORKERS)
    wait_for(server, "/readyz")

    stop = threading.Event()
    statuses: list[int] = []
    refused_after_sigterm: list[float] = []
    sigterm_at: list[float] = []

    def load() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                statuses.append(
                    requests.post(f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE).status_code
                )
            except requests.ConnectionError:  # a new request after the listener closed
                refused_after_sigterm.append(time.monotonic())
                time.sleep(0.01)

    loaders = [threading.Thread(target=load) for _ in range(2)]
    for thread in loaders:
        thread.start()
    wait_until(lambda: statuses, 10, 0.01, "the load got no answer before SIGTERM")
    readiness = PartialRequest(server.url, "GET", "/readyz")
    prediction = PartialRequest(server.url, "POST", "/predict_gender", json.dumps(ORIGINAL_EXAMPLE).encode())
    time.sleep(0.3)  # both accepted by a worker and being read

    sigterm_at.append(time.monotonic())
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # for the workers to handle it: they report that only through /readyz itself
    ready_status, ready_body = readiness.finish()
    predict_status, predict_body = prediction.finish()
    exit_code = server.process.wait(timeout=15)
    stopped_after = time.monotonic() - sigterm_at[0]
    stop.set()
    for thread in loaders:
        thread.join()

    assert ready_status == 503
    assert "shutting down" in ready_body["error"]["message"]
    assert predict_status == 200
    assert predict_body["model_version"] == version
    assert exit_code == 0
    # Well under graceful_timeout (20 s): workers leave once their in-flight request is done.
    assert stopped_after < 10, server.log()[-3000:]
    assert statuses and set(statuses) == {200}, "every answered request succeeded"
    assert all(at > sigterm_at[0] for at in refused_after_sigterm)


def test_logs_are_json_lines_with_the_request_fields_and_no_names(start_service, sample_model_dir):
    server = start_service(model_dir=sample_model_dir)
    wait_for(server, "/readyz")
    answer = requests.post(
        f"{server.url}/predict_gender",
        json={"name": "Zebediah Quuxington"},
        headers={"X-Request-ID": "log-1"},
    )
    assert answer.status_code == 200
    server.stop()

    records = [json.loads(line) for line in server.log().splitlines()]  # every line is one JSON object
    mine = [record for record in records if record.get("request_id") == "log-1"]
    assert len(mine) == 1
    assert {key: mine[0][key] for key in ("method", "path", "status", "model_version", "predicted")} == {
        "method": "POST",
        "path": "/predict_gender",
        "status": 200,
        "model_version": answer.json()["model_version"],
        "predicted": answer.json()["gender"],
    }
    assert mine[0]["latency_ms"] > 0
    logged_at = datetime.fromisoformat(mine[0]["time"])
    assert logged_at.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - logged_at) < timedelta(minutes=5)
    assert "Zebediah" not in server.log() and "Quuxington" not in server.log()


def test_log_level_warning_silences_the_request_lines_but_not_the_answers(start_service, sample_model_dir):
    server = start_service(model_dir=sample_model_dir, log_level="WARNING")
    wait_for(server, "/readyz")
    answer = requests.post(
        f"{server.url}/predict_gender", json={"age": 30}, headers={"X-Request-ID": "quiet-1"}
    )
    assert answer.status_code == 200
    server.stop()

    assert "quiet-1" not in server.log()
    assert '"model loaded"' not in server.log()  # INFO lines of the app are gone as well


def metrics_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("gender-api-metrics-*"))


def test_the_metrics_directory_lives_as_long_as_the_server(
    start_service, sample_model_dir, tmp_path, monkeypatch
):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    server = start_service(model_dir=sample_model_dir, workers=WORKERS)
    wait_for(server, "/readyz")
    assert requests.post(f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE).status_code == 200

    (samples,) = metrics_dirs(tmp)
    assert list(samples.glob("*.db")), "the workers write their samples there"
    assert server.stop() == 0
    assert metrics_dirs(tmp) == []


def test_reading_the_config_changes_nothing(tmp_path):
    """gunicorn executes the config module to read settings; only its hooks create or set anything."""
    script = "import os, service.gunicorn_conf; print('PROMETHEUS_MULTIPROC_DIR' in os.environ)"
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=CHECKOUT_DIR, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_a_bad_variable_stops_gunicorn_with_its_name(tmp_path):
    environment = {**os.environ, "TMPDIR": str(tmp_path), "GENDER_WORKERS": "0"}
    done = subprocess.run(
        [str(GUNICORN), "--config", "python:service.gunicorn_conf", API_APP],
        cwd=CHECKOUT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "invalid settings: GENDER_WORKERS='0'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []

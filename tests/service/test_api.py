"""The API over real HTTP: every endpoint, and a table of bad inputs, against a real gunicorn."""

import gzip
import json
import time
from collections.abc import Callable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from model import drift
from model.artifact import load
from model.contract import FIELD_BY_NAME, FIELD_NAMES, KNOWN_COMPANIES
from service.metrics import SCORED_FLUSH_INTERVAL_S
from service.settings import ServiceSettings
from tests.fixtures.keys import session_trusted
from tests.support.metrics import sample_value
from tests.support.polling import wait_until
from tests.support.users import FULL_USER, ORIGINAL_EXAMPLE

pytestmark = pytest.mark.slow

DEFAULTS = ServiceSettings()


def post(url: str, body, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(
        f"{url}/predict_gender", data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )


def metrics_once(url: str, counted: Callable[[str], bool]) -> str:
    """/metrics once `counted(exposition)` holds. Each worker adds the users it scored to the shared
    counters every flush interval and before answering /metrics; a request may have gone to the
    other worker."""

    def exposition() -> str:
        return requests.get(f"{url}/metrics").text

    return wait_until(
        lambda: counted(text := exposition()) and text,
        5 * SCORED_FLUSH_INTERVAL_S,
        0.2,
        lambda: f"never counted; /metrics now:\n{exposition()}",
    )


def settled_metrics(url: str) -> str:
    """/metrics once the users scored by earlier requests are all counted."""
    time.sleep(2 * SCORED_FLUSH_INTERVAL_S)
    return requests.get(f"{url}/metrics").text


def assert_prediction(item: dict, version: str) -> None:
    assert item["gender"] in ("female", "male")
    assert 0.5 <= item["probability"] <= 1.0  # the probability of the predicted class
    assert item["model_version"] == version


@pytest.fixture(scope="module")
def version(live_service) -> str:
    return requests.get(f"{live_service}/version").json()["version"]


def test_the_original_example_works_as_is(live_service, version):
    response = post(live_service, ORIGINAL_EXAMPLE)
    assert response.status_code == 200
    assert set(response.json()) == {"gender", "probability", "model_version"}
    assert_prediction(response.json(), version)


def test_every_field_at_once(live_service, version):
    response = post(live_service, FULL_USER)
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), version)


def test_a_batch_answers_in_request_order(live_service, version):
    one_by_one = [
        post(live_service, user).json() for user in ({"name": "Mary Jones"}, {"name": "Mr John Brown"})
    ]
    response = post(live_service, {"instances": [{"name": "Mary Jones"}, {"name": "Mr John Brown"}]})
    assert response.status_code == 200
    assert response.json()["model_version"] == version
    assert response.json()["predictions"] == one_by_one
    assert [p["gender"] for p in one_by_one] == ["female", "male"]


def test_a_full_batch_is_accepted(live_service, version):
    response = post(live_service, {"instances": [ORIGINAL_EXAMPLE] * DEFAULTS.max_instances})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == DEFAULTS.max_instances


def test_an_unknown_company_is_accepted_and_scored(live_service, version):
    assert "Initech" not in KNOWN_COMPANIES
    response = post(live_service, {**ORIGINAL_EXAMPLE, "company": "Initech"})
    assert response.status_code == 200
    assert_prediction(response.json(), version)


def test_a_name_of_the_maximum_length_is_accepted(live_service):
    assert post(live_service, {"name": "A" * FIELD_BY_NAME["name"].max_length}).status_code == 200


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (case, body, headers, status, error code, field path of the first detail or None)
BAD_INPUT = [
    ("malformed JSON", b'{"age": 30,', None, 400, "malformed_json", None),
    ("trailing garbage", b'{"age": 30} x', None, 400, "malformed_json", None),
    ("empty body", b"", None, 400, "malformed_json", None),
    (
        "text/plain",
        json.dumps(ORIGINAL_EXAMPLE),
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "gzip body",
        gzip.compress(json.dumps(ORIGINAL_EXAMPLE).encode()),
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_content_encoding",
        None,
    ),
    (
        "form encoded",
        "age=30",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "body over the limit",
        b'{"name": "' + b"a" * DEFAULTS.max_body_bytes + b'"}',
        None,
        413,
        "request_entity_too_large",
        None,
    ),
    (
        "too many instances",
        {"instances": [{"age": 30}] * (DEFAULTS.max_instances + 1)},
        None,
        413,
        "too_many_instances",
        None,
    ),
    ("age as a string", {"age": "30"}, None, 422, "invalid_request", ["age"]),
    ("name_length with a fraction", {"name_length": 12.5}, None, 422, "invalid_request", ["name_length"]),
    ("age as a boolean", {"age": True}, None, 422, "invalid_request", ["age"]),
    ("NaN", b'{"age": NaN}', None, 422, "invalid_request", ["age"]),
    ("Infinity", b'{"age": Infinity}', None, 422, "invalid_request", ["age"]),
    ("overflow to infinity", b'{"avg_distance": 1e999}', None, 422, "invalid_request", ["avg_distance"]),
    ("negative age", {"age": -1}, None, 422, "invalid_request", ["age"]),
    ("age over 120", {"age": 121}, None, 422, "invalid_request", ["age"]),
    ("share over 1", {"share_premium": 1.5}, None, 422, "invalid_request", ["share_premium"]),
    ("huge integer", {"travel_count": 10**30}, None, 422, "invalid_request", ["travel_count"]),
    ("empty name", {"name": ""}, None, 422, "invalid_request", ["name"]),
    ("500-character name", {"name": "a" * 500}, None, 422, "invalid_request", ["name"]),
    ("NUL in a name", {"name": "Ann\u0000 Lee"}, None, 422, "invalid_request", ["name"]),
    ("escape in a title", {"title": "Mrs\u001b"}, None, 422, "invalid_request", ["title"]),
    ("C1 control in a company", {"company": "4You\u0085"}, None, 422, "invalid_request", ["company"]),
    ("country in lower case", {"country": "fr"}, None, 422, "invalid_request", ["country"]),
    ("country as a name", {"country": "France"}, None, 422, "invalid_request", ["country"]),
    (
        "control character inside a batch",
        {"instances": [{"name": "Ann Lee"}, {"name": "Ann\u007f Lee"}]},
        None,
        422,
        "invalid_request",
        ["instances", 1, "name"],
    ),
    ("null field", {"age": None}, None, 422, "invalid_request", ["age"]),
    ("unknown field", {"age": 30, "shoe_size": 42}, None, 422, "invalid_request", ["shoe_size"]),
    ("empty object", {}, None, 422, "invalid_request", []),
    ("array at top level", [ORIGINAL_EXAMPLE], None, 422, "invalid_request", []),
    ("scalar at top level", 42, None, 422, "invalid_request", []),
    ("string at top level", b'"hello"', None, 422, "invalid_request", []),
    ("empty instances", {"instances": []}, None, 422, "invalid_request", ["instances"]),
    ("instances not a list", {"instances": {"age": 30}}, None, 422, "invalid_request", ["instances"]),
    (
        "bad field inside a batch",
        {"instances": [{"age": 30}, {"age": "x"}]},
        None,
        422,
        "invalid_request",
        ["instances", 1, "age"],
    ),
    (
        "extra key beside instances",
        {"instances": [{"age": 30}], "age": 3},
        None,
        422,
        "invalid_request",
        ["age"],
    ),
    ("nesting too deep to parse", nested(5000), None, 400, "malformed_json", None),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_gets_a_clear_error(live_service, body, headers, status, code, field):
    response = post(live_service, body, headers)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text
    if field is not None:
        assert error["details"], "a schema violation names the offending field"
        assert error["details"][0]["loc"] == field
        assert {"loc", "type", "message"} == set(error["details"][0])


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"X-Padding": "a" * 16384}, "/predict_gender"),  # one field over gunicorn's 8190 bytes
        ({f"X-Header-{i}": "1" for i in range(150)}, "/predict_gender"),  # over its 100 fields
        ({}, "/predict_gender?" + "a" * 8000),  # a request line over its 4094 bytes
    ],
    ids=["a huge header", "too many headers", "a huge request line"],
)
def test_oversized_request_headers_are_refused_at_once_and_hold_no_worker(live_service, headers, path):
    started = time.monotonic()
    response = requests.post(f"{live_service}{path}", json=ORIGINAL_EXAMPLE, headers=headers, timeout=10)
    assert response.status_code in (400, 431), response.text
    # Fresh connections reach every worker: none is left waiting on the refused request.
    for _ in range(2 * DEFAULTS.workers):
        assert requests.get(f"{live_service}/healthz", timeout=2).status_code == 200
    assert time.monotonic() - started < 5


def test_an_identity_content_encoding_is_accepted(live_service, version):
    response = post(live_service, ORIGINAL_EXAMPLE, {"Content-Encoding": "identity"})
    assert response.status_code == 200
    assert_prediction(response.json(), version)


def test_a_control_character_is_named_in_the_error(live_service):
    [detail] = post(live_service, {"name": "Ann\u0000 Lee"}).json()["error"]["details"]
    assert detail == {
        "loc": ["name"],
        "type": "control_character",
        "message": "control character U+0000 is not allowed in text",
    }


def test_details_never_echo_the_input(live_service):
    response = post(live_service, {"name": "Secret Person" + "x" * 300})
    assert response.status_code == 422
    assert "Secret Person" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/predict_gender", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/version", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_share_the_error_shape(live_service, method, path, status, code):
    response = requests.request(method, live_service + path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if status == 405:
        assert response.headers["Allow"]


def test_health_ready_and_version(live_service, version, sample_model_dir):
    assert requests.get(f"{live_service}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{live_service}/readyz").json() == {"status": "ready", "model_version": version}
    on_disk = json.loads((sample_model_dir / "versions" / version / "model.json").read_text())
    assert requests.get(f"{live_service}/version").json() == on_disk


def test_the_model_card_is_the_one_beside_the_model_in_use(live_service, version, sample_model_dir):
    counted = {"endpoint": "/model-card", "status": "200"}
    before = sample_value(
        requests.get(f"{live_service}/metrics").text, "gender_api_requests_total", **counted
    )
    response = requests.get(f"{live_service}/model-card")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    on_disk = (sample_model_dir / "versions" / version / "model_card.md").read_bytes()
    assert response.content == on_disk
    assert f"# gender-classifier {version}" in response.text
    after = sample_value(requests.get(f"{live_service}/metrics").text, "gender_api_requests_total", **counted)
    assert after - before == 1


def test_request_id_is_echoed_or_generated(live_service):
    given = post(live_service, ORIGINAL_EXAMPLE, {"X-Request-ID": "trace-42"})
    assert given.headers["X-Request-ID"] == "trace-42"
    generated = [post(live_service, ORIGINAL_EXAMPLE).headers["X-Request-ID"] for _ in range(2)]
    assert all(generated) and generated[0] != generated[1]
    injected = post(live_service, ORIGINAL_EXAMPLE, {"X-Request-ID": "a b\tc" * 100})
    assert injected.headers["X-Request-ID"] not in ("a b\tc" * 100, "")


def test_metrics_count_requests_of_every_worker(live_service, version):
    before = settled_metrics(live_service)
    # Fresh connections spread over both workers; the exposition must sum them all.
    sent = 40
    genders = [post(live_service, {"name": "Mary Jones"}).json()["gender"] for _ in range(sent)]
    assert post(live_service, {"age": "x"}).status_code == 422
    after = requests.get(f"{live_service}/metrics").text
    ok = {"endpoint": "/predict_gender", "status": "200"}
    total = "gender_api_requests_total"
    assert sample_value(after, total, **ok) - sample_value(before, total, **ok) == sent
    rejected = {"endpoint": "/predict_gender", "status": "422"}
    assert sample_value(after, total, **rejected) - sample_value(before, total, **rejected) == 1
    predictions = "gender_api_predictions_total"
    metrics_once(
        live_service,
        lambda text: (
            sample_value(text, predictions, gender=genders[0])
            - sample_value(before, predictions, gender=genders[0])
            == sent
        ),
    )
    assert (
        sample_value(after, "gender_api_request_duration_seconds_count", endpoint="/predict_gender") >= sent
    )
    assert sample_value(after, "gender_api_model_info", version=version) == 1
    assert sample_value(after, "gender_api_model_loads_total", outcome="loaded") == DEFAULTS.workers


def test_metrics_count_a_batch_by_predicted_class(live_service):
    names = ["Mary Jones", "John Smith", "Mary Jones", "Robert Brown", "Linda Green"]
    before = settled_metrics(live_service)
    answer = post(live_service, {"instances": [{"name": name} for name in names]})
    genders = [item["gender"] for item in answer.json()["predictions"]]
    assert set(genders) == {"female", "male"}

    def counted(text: str) -> dict[str, float]:
        return {
            gender: sample_value(text, "gender_api_predictions_total", gender=gender)
            - sample_value(before, "gender_api_predictions_total", gender=gender)
            for gender in ("female", "male")
        }

    metrics_once(
        live_service, lambda text: counted(text) == {g: genders.count(g) for g in ("female", "male")}
    )


def test_metrics_export_every_drift_bin_and_the_models_reference(live_service, sample_model_dir):
    reference = load(sample_model_dir, session_trusted()).metadata["drift_reference"]
    before = settled_metrics(live_service)
    exported = {
        (sample.labels["feature"], sample.labels["bin"])
        for family in text_string_to_metric_families(before)
        for sample in family.samples
        if sample.name == "gender_api_input_total"
    }
    assert exported == {(feature, value) for feature, values in drift.FEATURES.items() for value in values}
    for feature, shares in reference["features"].items():
        for value, share in shares.items():
            exported_share = sample_value(
                before, "gender_api_input_reference_share", feature=feature, bin=value
            )
            assert exported_share == pytest.approx(share)
    assert sample_value(before, "gender_api_reference_female_share") == pytest.approx(
        reference["female_share"]
    )

    user = {"name": "Xqzwv Quetzalcoatl", "age": 19, "company": "Initech", "travel_count": 4}
    assert post(live_service, {"instances": [user, user]}).status_code == 200
    expected = {
        "age": "18-24",
        "company": "other",
        "first_name": "unknown",
        "travel_count": "3-5",
        "title": "none",
    }

    def counted(exposition: str) -> dict[str, float]:
        return {
            feature: sample_value(exposition, "gender_api_input_total", feature=feature, bin=value)
            - sample_value(before, "gender_api_input_total", feature=feature, bin=value)
            for feature, value in expected.items()
        }

    after = metrics_once(live_service, lambda text: counted(text) == dict.fromkeys(expected, 2))
    assert "xqzwv" not in after.lower() and "quetzal" not in after.lower()


def test_openapi_documents_every_endpoint(live_service):
    document = requests.get(f"{live_service}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/predict_gender",
        "/healthz",
        "/readyz",
        "/version",
        "/model-card",
        "/metrics",
        "/openapi.json",
        "/",
    }
    predict = document["paths"]["/predict_gender"]["post"]
    assert "unseen category" in predict["description"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    card = document["paths"]["/model-card"]["get"]["responses"]
    assert set(card) == {"200", "404", "503"} and "text/markdown" in card["200"]["content"]
    user = document["components"]["schemas"]["UserFeatures"]
    assert set(user["properties"]) == set(FIELD_NAMES)
    assert user["additionalProperties"] is False
    assert user["properties"]["name"]["maxLength"] == FIELD_BY_NAME["name"].max_length


def test_the_page_is_self_contained(live_service):
    response = requests.get(f"{live_service}/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "/predict_gender" in response.text
    assert "http://" not in response.text and "https://" not in response.text  # no CDN

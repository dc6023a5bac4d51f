"""The Flask app: ``gunicorn --config python:service.gunicorn_conf "service.app:create_app()"``.

The request path is kept lean on purpose: the body bytes go straight into a compiled pydantic
validator, the predictor scores the validated dicts as they are, and the answer is dumped with orjson.
"""

import json
from collections import Counter
from pathlib import Path

from flask import Flask, Response, request
from pydantic import ValidationError
from werkzeug.exceptions import ClientDisconnected

from service import errors, lifecycle, metrics
from service.errors import JSON, ApiError, json_response
from service.instrument import MODEL_VERSION_KEY, PREDICTED_KEY, Instrumented
from service.model_holder import ModelHolder
from service.openapi import openapi_document
from service.schema import request_adapter
from service.settings import CLIENT_TIMEOUT_S, ServiceSettings

INDEX_PAGE = Path(__file__).with_name("static") / "index.html"
MARKDOWN = "text/markdown; charset=utf-8"
MAX_ECHOED_ENCODING = 32  # characters of a refused Content-Encoding quoted back in the error


def _rejection(exc: ValidationError, max_instances: int) -> ApiError:
    """Map a validation failure to the status that tells the client what to fix."""
    found = exc.errors(include_url=False, include_input=False)
    kinds = {(err["type"], err["loc"]) for err in found}
    if found[0]["type"] == "json_invalid":
        reason = found[0]["msg"].removeprefix("Invalid JSON: ")
        return ApiError(400, "malformed_json", f"The request body is not valid JSON: {reason}.")
    if ("too_long", ("batch", "instances")) in kinds:
        return ApiError(413, "too_many_instances", f"A request carries at most {max_instances} instances.")
    return ApiError(
        422, "invalid_request", "The request body does not match the schema.", errors.field_details(exc)
    )


def create_app(settings: ServiceSettings | None = None) -> Flask:
    settings = settings or ServiceSettings.from_env()
    app = Flask(__name__, static_folder=None)  # the one page is served by index()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    errors.register(app)

    # Created in each gunicorn worker (the app is not preloaded), so the watcher thread lives there.
    metrics.initialize()
    metrics.scored.start_flushing()
    holder = ModelHolder(settings.model_dir, settings.trusted_keys_dir, settings.reload_interval_s)
    holder.refresh()
    holder.start_watching()

    adapter = request_adapter(settings.max_instances)
    openapi = json.dumps(openapi_document(adapter))
    index_html = INDEX_PAGE.read_bytes()

    def current_model():
        """The model in use. A worker without one looks at the volume now rather than at its next
        check: another worker may already have picked up a first model and reported the pod ready."""
        if holder.model is None:
            holder.refresh()
        return holder.model

    def model_or_503():
        model = current_model()
        if model is None:
            raise ApiError(503, "model_unavailable", "No verified model is loaded yet; retry shortly.")
        return model

    @app.post("/predict_gender")
    def predict_gender() -> Response:
        if request.mimetype != JSON:
            raise ApiError(415, "unsupported_media_type", "Send the body as Content-Type: application/json.")
        # The body is read as it comes: a compressed one would be parsed as garbage JSON.
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ApiError(
                415,
                "unsupported_content_encoding",
                f"Content-Encoding {encoding[:MAX_ECHOED_ENCODING]!r} is not decoded; "
                "send the body uncompressed.",
            )
        model = model_or_503()
        try:
            raw = request.get_data(cache=False)
        except ClientDisconnected:  # the worker's deadline on each read passed, or the client left
            raise ApiError(
                408,
                "request_timeout",
                f"The request body stopped arriving before Content-Length bytes "
                f"(nothing came for {CLIENT_TIMEOUT_S:g} s, or the connection closed).",
            ) from None
        try:
            body = adapter.validate_json(raw)
        except ValidationError as exc:
            raise _rejection(exc, settings.max_instances) from None
        batch = "instances" in body
        predictions = model.predictor.predict(body["instances"] if batch else [body])
        version = model.version
        metrics.scored.add(predictions)
        request.environ[MODEL_VERSION_KEY] = version
        request.environ[PREDICTED_KEY] = (
            dict(Counter(p.gender for p in predictions)) if batch else predictions[0].gender
        )
        answers = [
            {"gender": p.gender, "probability": p.probability, "model_version": version} for p in predictions
        ]
        return json_response({"predictions": answers, "model_version": version} if batch else answers[0])

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        model = current_model()
        if model is None or lifecycle.draining.is_set():
            reason = "shutting down" if model else holder.problem or "no verified model is loaded yet"
            raise ApiError(503, "not_ready", f"Not ready: {reason}.")
        return json_response({"status": "ready", "model_version": model.version})

    @app.get("/version")
    def version() -> Response:
        return json_response(model_or_503().metadata)

    @app.get("/model-card")
    def model_card() -> Response:
        model = model_or_503()
        if model.card is None:
            raise ApiError(
                404,
                "model_card_not_found",
                f"Model version {model.version} was published without a model card; retrain to get one.",
            )
        return Response(model.card, content_type=MARKDOWN)

    @app.get("/metrics")
    def prometheus() -> Response:
        payload, content_type = metrics.exposition()
        return Response(payload, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return Response(openapi, mimetype=JSON)

    @app.get("/")
    def index() -> Response:
        return Response(index_html, mimetype="text/html")

    app.wsgi_app = Instrumented(app.wsgi_app, frozenset(rule.rule for rule in app.url_map.iter_rules()))
    return app

"""One JSON error shape for every failure, `{"error": {"code", "message", "details"}}`; no traceback."""

import logging
from http import HTTPStatus

import orjson
from flask import Flask, Response, current_app
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure the client should see as it is: status, stable code, human message, field details."""

    def __init__(self, status: int, code: str, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


JSON = "application/json"


def json_response(body: object, status: int = 200) -> Response:
    """Every JSON answer of the API, errors included."""
    return Response(orjson.dumps(body), status=status, mimetype=JSON)


def error_response(status: int, code: str, message: str, details: list[dict] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": details or []}}, status)


def field_details(exc: ValidationError) -> list[dict]:
    """Pydantic errors without the offending input (it may hold a name) and without the routing tag."""
    return [
        {"loc": list(err["loc"][1:]), "type": err["type"], "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # 404, 405 (keeps its Allow header), 413 from MAX_CONTENT_LENGTH, ...
        code = HTTPStatus(exc.code).phrase.lower().replace(" ", "_")
        message = exc.description
        if isinstance(exc, RequestEntityTooLarge):
            message = f"The request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes."
        response = error_response(exc.code, code, message)
        for key, value in exc.get_headers():
            if key != "Content-Type":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "The server failed to answer this request.")

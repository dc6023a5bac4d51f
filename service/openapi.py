"""The OpenAPI 3.1 document; every request and response schema is generated from service.schema."""

from typing import Any

from pydantic import TypeAdapter

from model.contract import UNKNOWN_COMPANY_NOTE
from service import schema

REF = "#/components/schemas/{model}"


def openapi_document(request: TypeAdapter) -> dict[str, Any]:
    components: dict[str, Any] = {}

    def schema_of(adapter: TypeAdapter) -> dict[str, Any]:
        generated = adapter.json_schema(ref_template=REF)
        components.update(generated.pop("$defs", {}))
        return generated

    def ref(model: type) -> dict[str, str]:
        components[model.__name__] = schema_of(TypeAdapter(model))
        return {"$ref": REF.format(model=model.__name__)}

    def json_body(body: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": body}}}

    error = ref(schema.Error)

    def failure(description: str) -> dict[str, Any]:
        return json_body(error, description)

    not_loaded = failure("No verified model is loaded")
    predict = {
        "summary": "Predict the gender of one user or of a batch",
        "description": (
            'Send one user object, or `{"instances": [...]}`. All fields are optional but at least one is '
            'required; unknown fields are rejected; types are strict (no `"30"` for 30, no NaN). '
            + UNKNOWN_COMPANY_NOTE
        ),
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema_of(request)}}},
        "responses": {
            "200": json_body(
                {"oneOf": [ref(schema.Prediction), ref(schema.BatchPrediction)]},
                "One prediction, or the batch's predictions in request order",
            ),
            "400": failure("The body is not valid JSON"),
            "413": failure("The body is too large, or carries too many instances"),
            "415": failure(
                "The Content-Type is not application/json, or the body is compressed (Content-Encoding)"
            ),
            "422": failure("The body does not match the schema; details name each field"),
            "503": not_loaded,
        },
    }
    paths = {
        "/predict_gender": {"post": predict},
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": json_body(ref(schema.Health), "Alive")}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: a verified model is loaded and the process is not shutting down",
                "responses": {"200": json_body(ref(schema.Ready), "Ready"), "503": failure("Not ready")},
            }
        },
        "/version": {
            "get": {
                "summary": "Metadata (model.json) of the model in use",
                "responses": {
                    "200": json_body({"type": "object"}, "The model's metadata"),
                    "503": not_loaded,
                },
            }
        },
        "/model-card": {
            "get": {
                "summary": "The model card (model_card.md) of the model in use",
                "responses": {
                    "200": {
                        "description": "A Hugging Face model card: YAML metadata, then Markdown",
                        "content": {"text/markdown": {"schema": {"type": "string"}}},
                    },
                    "404": failure("The model in use was published without a model card"),
                    "503": not_loaded,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every worker",
                "responses": {"200": {"description": "Text exposition", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": json_body({"type": "object"}, "OpenAPI")},
            }
        },
        "/": {
            "get": {
                "summary": "A page to try a prediction",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "gender-classifier API", "version": "1"},
        "paths": paths,
        "components": {"schemas": components},
    }

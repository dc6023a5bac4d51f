"""The benchmark's baseline: a bare JSON echo served by the same gunicorn configuration as the API.

Never part of the product; `bench_serve` compares /predict_gender against it.
"""

import json

from flask import Flask, Response, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo() -> Response:
        return Response(json.dumps(request.get_json()), mimetype="application/json")

    return app

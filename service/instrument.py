"""Per-request bookkeeping as WSGI middleware: request id, JSON access log line, Prometheus samples.

Plain WSGI on the environ instead of Flask hooks and context proxies: this runs on every request,
and the proxies cost more than the work itself.
"""

import os
import re
import time

from service import metrics
from service.logs import AccessLog

# A client's request id is echoed and logged only if it is short and plain (no log or header injection).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What the prediction view leaves in the environ for the log line.
MODEL_VERSION_KEY = "gender.model_version"
PREDICTED_KEY = "gender.predicted"

access_log = AccessLog("service.requests")


class Instrumented:
    def __init__(self, wsgi_app, endpoints: frozenset[str]):
        self.wsgi_app = wsgi_app
        self.endpoints = endpoints  # known paths; anything else is one "unmatched" label

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = os.urandom(16).hex()  # uuid4's 128 random bits, without building a UUID
        status = []

        def start(status_line, headers, exc_info=None):
            status.append(int(status_line[:3]))
            headers.append(("X-Request-ID", request_id))
            return start_response(status_line, headers, exc_info)

        body = self.wsgi_app(environ, start)
        elapsed = time.perf_counter() - started
        path = environ.get("PATH_INFO", "")
        metrics.observe(path if path in self.endpoints else "unmatched", status[0], elapsed)
        access_log.info(
            "request",
            {
                "request_id": request_id,
                "method": environ.get("REQUEST_METHOD"),
                "path": path,
                "status": status[0],
                "latency_ms": round(elapsed * 1000, 3),
                "model_version": environ.get(MODEL_VERSION_KEY),
                "predicted": environ.get(PREDICTED_KEY),
            },
        )
        return body

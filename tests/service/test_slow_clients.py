"""Slow clients against the real gunicorn: each holds a greenlet, never a worker, and has deadlines.

How fast the API answers beside them is measured by `make bench-serve`; these tests check that it
answers at all, and that a silent client is cut off."""

import http.client
import json
import socket
import time

import pytest
import requests

from service.gunicorn_conf import KEEPALIVE_S
from service.settings import CLIENT_TIMEOUT_S
from tests.fixtures.service import wait_for
from tests.support.raw_http import PartialRequest
from tests.support.users import ORIGINAL_EXAMPLE

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 50
# Far below the deadline the slow clients would otherwise make everyone wait for.
ANSWER_WITHIN_S = 3.0
SLACK_S = 3.0


@pytest.fixture
def server(start_service, sample_model_dir):
    server = start_service(model_dir=sample_model_dir)
    wait_for(server, "/readyz")
    return server


def test_fifty_clients_stuck_in_their_bodies_leave_the_api_answering_everyone_else(server):
    body = json.dumps(ORIGINAL_EXAMPLE).encode()
    stuck = [PartialRequest(server.url, "POST", "/predict_gender", body) for _ in range(SLOW_CLIENTS)]
    time.sleep(0.5)  # every one accepted and waiting for the rest of its body

    for _ in range(10):
        response = requests.post(
            f"{server.url}/predict_gender", json=ORIGINAL_EXAMPLE, timeout=ANSWER_WITHIN_S
        )
        assert response.status_code == 200
    assert requests.get(f"{server.url}/readyz", timeout=ANSWER_WITHIN_S).status_code == 200
    # And each slow client is answered too once its body is complete.
    assert {request.finish()[0] for request in stuck} == {200}


def test_a_body_that_stops_arriving_is_answered_408_after_the_client_deadline(server):
    stuck = PartialRequest(server.url, "POST", "/predict_gender", json.dumps(ORIGINAL_EXAMPLE).encode())
    started = time.monotonic()
    status, body = stuck.answer()
    waited = time.monotonic() - started

    assert status == 408
    assert body["error"]["code"] == "request_timeout"
    assert f"{CLIENT_TIMEOUT_S:g} s" in body["error"]["message"]
    assert CLIENT_TIMEOUT_S - 0.5 < waited < CLIENT_TIMEOUT_S + SLACK_S


def test_a_connection_that_sends_nothing_is_closed_after_the_keepalive_time(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=KEEPALIVE_S + SLACK_S) as silent:
        started = time.monotonic()
        assert silent.recv(1024) == b"", "closed without an answer"
        waited = time.monotonic() - started
    assert KEEPALIVE_S - 0.5 < waited < KEEPALIVE_S + SLACK_S


def test_a_connection_serves_one_request_after_another(server):
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=ANSWER_WITHIN_S)
    body = json.dumps(ORIGINAL_EXAMPLE)
    sockets = []
    for _ in range(3):
        connection.request("POST", "/predict_gender", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") == "keep-alive"
        response.read()
        sockets.append(connection.sock)
    connection.close()
    assert len({id(sock) for sock in sockets}) == 1, "the three requests shared one connection"

"""The page at / in headless Chromium: fill the form, submit, read the prediction shown.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out,
NUL-terminated JSON), so no driver package or debugging port is needed. One Chromium serves the
session; each test gets a tab of its own.
"""

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.polling import wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 30


class DevTools:
    """A minimal DevTools-protocol client on Chromium's pipe."""

    def __init__(self, user_data_dir):
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's fixed descriptors 3 and 4
            os.dup2(to_chrome_read, 3)
            os.dup2(from_chrome_write, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            preexec_fn=wire_pipes,
            pass_fds=(3, 4),  # kept open after wire_pipes() runs
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []  # received while waiting for something else

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            readable, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise AssertionError(f"chromium sent no {waiting_for} within {TIMEOUT_S} s")
            chunk = os.read(self._from_chrome, 65536)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._receive(deadline, f"reply to {method}")
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply
                return reply["result"]
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        """The next event `method` of `session`, also if it came while a call waited for its reply."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self._events:
                if event["method"] == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return event["params"]
            self._events.append(self._receive(deadline, method))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Iterator[DevTools]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    devtools = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    yield devtools
    devtools.close()


@pytest.fixture
def page(browser, live_service) -> Iterator[str]:
    """A new tab with the service's page loaded (its DevTools session id); closed after the test."""
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    browser.call("Page.enable", session)
    navigated = browser.call("Page.navigate", session, url=f"{live_service}/")
    assert "errorText" not in navigated, navigated
    browser.wait_event("Page.loadEventFired", session)
    yield session
    browser.call("Target.closeTarget", targetId=target)


def evaluate(browser: DevTools, session: str, expression: str):
    result = browser.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")


def submit(browser: DevTools, session: str, **fields: str) -> str:
    """Fill the form, submit it, and return the text the page shows once the answer is in."""
    for name, value in fields.items():
        evaluate(browser, session, f"document.getElementById({name!r}).value = {json.dumps(value)}")
    evaluate(browser, session, "document.getElementById('submit').click()")
    shown = "document.getElementById('result').textContent"

    def answered() -> str | None:  # the page signals nothing when its fetch() returns: read what it shows
        text = evaluate(browser, session, shown)
        return None if not text or text.startswith("Predicting") else text

    return wait_until(
        answered, TIMEOUT_S, 0.1, lambda: f"the page still shows {evaluate(browser, session, shown)!r}"
    )


def test_the_page_shows_a_prediction(browser, page, live_service):
    shown = submit(browser, page, name="Mary Jones", age="34", company="Wonka Company")
    direct = requests.post(
        f"{live_service}/predict_gender", json={"name": "Mary Jones", "age": 34, "company": "Wonka Company"}
    ).json()
    percent = f"{100 * direct['probability']:.1f}%"
    assert shown == f"Prediction: {direct['gender']} ({percent}), model {direct['model_version']}"


def test_the_page_sends_the_country_in_upper_case(browser, page, live_service):
    shown = submit(browser, page, name="Andrea Rossi", country="it")
    direct = requests.post(
        f"{live_service}/predict_gender", json={"name": "Andrea Rossi", "country": "IT"}
    ).json()
    assert direct["gender"] == "male"
    assert shown == f"Prediction: male ({100 * direct['probability']:.1f}%), model {direct['model_version']}"


def test_the_page_shows_a_rejection(browser, page):
    shown = submit(browser, page)  # an empty form: the API wants at least one field
    assert shown.startswith("The request body does not match the schema.")
    assert "at least one field" in shown
    assert evaluate(browser, page, "document.getElementById('result').className") == "error"

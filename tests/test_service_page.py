"""The page at / in headless Chromium: fill the form, submit, read the prediction shown.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out,
NUL-terminated JSON), so no driver package or debugging port is needed.
"""

import json
import os
import shutil
import subprocess
import time

import pytest
import requests

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

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 65536)
                if not chunk:
                    raise AssertionError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply
                return reply["result"]
        raise AssertionError(f"no reply to {method}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    devtools = DevTools(tmp_path / "chromium-profile")
    yield devtools
    devtools.close()


def evaluate(browser: DevTools, session: str, expression: str):
    result = browser.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")


def wait_for_value(browser: DevTools, session: str, expression: str, until) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = evaluate(browser, session, expression)
        if until(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"{expression} stayed {value!r}")


def open_page(browser: DevTools, url: str) -> str:
    target = browser.call("Target.createTarget", url=url)["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    # Wait for our page, not the about:blank a new target starts with.
    loaded = "document.readyState === 'complete' && document.getElementById('predict') !== null"
    wait_for_value(browser, session, loaded, lambda done: done)
    return session


def submit(browser: DevTools, session: str, **fields: str) -> str:
    for name, value in fields.items():
        evaluate(browser, session, f"document.getElementById({name!r}).value = {json.dumps(value)}")
    evaluate(browser, session, "document.getElementById('submit').click()")
    return wait_for_value(
        browser,
        session,
        "document.getElementById('result').textContent",
        lambda text: bool(text) and not text.startswith("Predicting"),
    )


def test_the_page_shows_a_prediction(browser, live_service):
    session = open_page(browser, f"{live_service}/")
    shown = submit(browser, session, name="Mary Jones", age="34", company="Wonka Company")
    direct = requests.post(
        f"{live_service}/predict_gender", json={"name": "Mary Jones", "age": 34, "company": "Wonka Company"}
    ).json()
    percent = f"{100 * direct['probability']:.1f}%"
    assert shown == f"Prediction: {direct['gender']} ({percent}), model {direct['model_version']}"


def test_the_page_shows_a_rejection(browser, live_service):
    session = open_page(browser, f"{live_service}/")
    shown = submit(browser, session)  # an empty form: the API wants at least one field
    assert shown.startswith("The request body does not match the schema.")
    assert "at least one field" in shown
    assert evaluate(browser, session, "document.getElementById('result').className") == "error"

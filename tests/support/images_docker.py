"""The Docker CLI for tests/deploy/test_images.py: bounded calls, image builds, logs and waits.

Every call has a timeout; every wait on a container fails with that container's logs.
"""

import subprocess
from typing import NoReturn

import pytest
import requests

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.polling import wait_until

CALL_TIMEOUT_S = 120
INFO_TIMEOUT_S = 10
BASE_IMAGE_TIMEOUT_S = 900
# A fresh machine builds all three images from PyPI downloads; a warm cache takes seconds.
BUILD_TIMEOUT_S = 1800
POLL_S = 1.0
HTTP_TIMEOUT_S = 5
LOG_TAIL_LINES = 200
STATE_FORMAT = "{{.State.Status}} {{.State.ExitCode}} {{if .State.OOMKilled}}OOMKilled{{end}}"

OFFICIAL_BASE = "python:3.11-slim-bookworm"
STANDIN_BASE = "gender-base:bookworm"


def docker(
    *args: str,
    timeout: float = CALL_TIMEOUT_S,
    check: bool = True,
    text: bool = True,
    stdin: bytes | str | None = None,
) -> subprocess.CompletedProcess:
    """Run `docker ARGS` (with `stdin` as its input); with check, a non-zero exit fails the test with
    docker's message."""
    try:
        result = subprocess.run(
            ["docker", *args], input=stdin, capture_output=True, text=text, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`docker {' '.join(args[:3])} ...` did not finish within {timeout:.0f} s")
    if check and result.returncode != 0:
        stderr = result.stderr if text else result.stderr.decode(errors="replace")
        pytest.fail(f"`docker {' '.join(args)}` failed ({result.returncode}):\n{stderr.strip()}")
    return result


def engine_answers() -> bool:
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=INFO_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def base_image() -> str:
    """The official base when it is here; otherwise the debootstrap stand-in, built if missing."""
    if image_exists(OFFICIAL_BASE):
        return OFFICIAL_BASE
    if not image_exists(STANDIN_BASE):
        _run_logged(["bash", "docker/base-image.sh", STANDIN_BASE], BASE_IMAGE_TIMEOUT_S, "base-image")
    return STANDIN_BASE


def build_images(tag: str, base: str) -> None:
    """`make images`, the way people and CI build them (same build args, same names)."""
    build_args = [] if base == OFFICIAL_BASE else [f"BASE_IMAGE={base}"]
    _run_logged(
        ["make", "--no-print-directory", "images", f"TAG={tag}", *build_args], BUILD_TIMEOUT_S, "images"
    )


def _run_logged(command: list[str], timeout: float, what: str) -> None:
    log = CHECKOUT_DIR / "reports" / f"docker-{what}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        try:
            result = subprocess.run(
                command, cwd=CHECKOUT_DIR, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` did not finish within {timeout:.0f} s (log: {log})")
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"`{' '.join(command)}` failed ({result.returncode}), log {log}:\n{tail}")


def logs(container: str) -> str:
    result = docker("logs", "--tail", str(LOG_TAIL_LINES), container, check=False)
    return f"--- logs of {container} ---\n{result.stdout}{result.stderr}--- end of {container} ---"


def fail_with_logs(container: str, message: str) -> NoReturn:
    pytest.fail(f"{message}\n{logs(container)}")


def state(container: str) -> str:
    """e.g. "running", "exited 0", "exited 137 OOMKilled"."""
    result = docker("inspect", "--format", STATE_FORMAT, container, check=False)
    status, code, *oom = result.stdout.split() or ["gone", ""]
    return " ".join([status, *([code] if status == "exited" else []), *oom])


def running(container: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Running}}", container, check=False)
    return result.stdout.strip() == "true"


def wait_exit(container: str, timeout: float) -> int:
    """The container's exit code; fails with its logs when it is still running after `timeout`."""
    try:
        result = subprocess.run(
            ["docker", "wait", container], capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        fail_with_logs(container, f"{container} did not finish within {timeout:.0f} s")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"`docker wait {container}` failed: {exc.stderr.strip()}")
    return int(result.stdout.strip())


def published_url(container: str, port: int) -> str:
    """http://127.0.0.1:<host port> of a container port published with `-p 127.0.0.1::PORT`."""
    address = docker("port", container, f"{port}/tcp").stdout.splitlines()[0].strip()
    return f"http://{address}"


def wait_http(container: str, url: str, timeout: float) -> requests.Response:
    """Poll GET url until it answers 2xx, as a kubelet httpGet probe; fails early if the container exits."""
    last = "no answer yet"

    def answered() -> requests.Response | None:
        nonlocal last
        if not running(container):
            fail_with_logs(container, f"{container} exited while waiting for {url} ({last})")
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException as exc:
            last = type(exc).__name__
            return None
        if response.ok:
            return response
        last = f"HTTP {response.status_code}: {response.text[:200]}"
        return None

    return wait_until(
        answered,
        timeout,
        POLL_S,
        lambda: f"{url} did not answer 2xx within {timeout:.0f} s ({last})\n{logs(container)}",
    )

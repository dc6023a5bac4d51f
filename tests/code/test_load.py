"""The load gate: `make load` against the real service, thresholds that fail a run, and the
smoke test's port-forward handling.

Every Locust run is bounded (a few users, seconds long) and targets 127.0.0.1 only.
"""

import csv
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from load.thresholds import RunTotals, Thresholds, breaches
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.service import free_port
from tests.support.load import run_load, stats_by_name

SMOKE = CHECKOUT_DIR / "load" / "smoke.sh"
# Limits for the checks of the mechanism, unrelated to the versioned load/thresholds.toml.
EXAMPLE_LIMITS = Thresholds(max_failure_ratio=0.05, max_p95_ms=100.0, max_p99_ms=300.0, min_rps=20.0)
IMPOSSIBLE_LIMITS = "max_failure_ratio = 0\nmax_p95_ms = 0\nmax_p99_ms = 0\nmin_rps = 1000000\n"
INVALID_PREFIX = "invalid: "
USERS_CSV = "code,company,name,gender,age\n0,Acme Factory,Maria Silva,female,34\n1,4You,John Smith,male,41\n"


def users_csv(tmp_path: Path) -> str:
    path = tmp_path / "users.csv"
    path.write_text(USERS_CSV)
    return f"--users-csv {path}"


# --- thresholds -------------------------------------------------------------------------------


def test_the_versioned_thresholds_file_is_the_default_and_names_every_limit():
    versioned = CHECKOUT_DIR / "load" / "thresholds.toml"
    assert Thresholds.read() == Thresholds.read(versioned)  # raises on a missing or unknown limit


@pytest.mark.parametrize("content", ["max_failure_ratio = 0.01\n", IMPOSSIBLE_LIMITS + "max_p90_ms = 1\n"])
def test_a_thresholds_file_must_name_every_limit_and_no_other(tmp_path, content):
    path = tmp_path / "thresholds.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match="expected the keys"):
        Thresholds.read(path)


def test_breaches_name_each_broken_limit_and_only_those():
    limits = EXAMPLE_LIMITS
    at_the_limits = RunTotals(
        requests=500,
        failure_ratio=limits.max_failure_ratio,
        p95_ms=limits.max_p95_ms,
        p99_ms=limits.max_p99_ms,
        rps=limits.min_rps,
    )
    assert breaches(limits, at_the_limits) == []
    past_every_limit = RunTotals(
        requests=5,
        failure_ratio=limits.max_failure_ratio * 2,
        p95_ms=limits.max_p95_ms + 1,
        p99_ms=limits.max_p99_ms + 1,
        rps=limits.min_rps / 2,
    )
    assert [message.split()[0] for message in breaches(limits, past_every_limit)] == [
        "failure",
        "p95",
        "p99",
        "throughput",
    ]
    slow_tail = replace(at_the_limits, p99_ms=limits.max_p99_ms * 2)
    assert breaches(limits, slow_tail) == ["p99 600 ms > 300 ms"]


# --- Locust against the real service ------------------------------------------------------------


@pytest.mark.slow
def test_a_realistic_run_against_the_service_passes_the_gate(live_service, tmp_path):
    run = run_load(live_service, tmp_path, users=10, duration="12s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "load gate passed" in run.stderr
    stats = stats_by_name(tmp_path)
    total = stats["Aggregated"]
    assert int(total["Request Count"]) > 100
    assert int(total["Failure Count"]) == 0
    assert float(total["95%"]) <= Thresholds.read().max_p95_ms
    assert int(stats["predict: batch"]["Request Count"]) > 0
    # Invalid requests were sent, and their 4xx answers counted as successes.
    invalid = [row for name, row in stats.items() if name.startswith(INVALID_PREFIX)]
    assert sum(int(row["Request Count"]) for row in invalid) > 0
    assert (tmp_path / "locust.html").stat().st_size > 0


@pytest.mark.slow
def test_a_broken_threshold_makes_the_run_fail_loudly(live_service, tmp_path):
    thresholds = tmp_path / "impossible.toml"
    thresholds.write_text(IMPOSSIBLE_LIMITS)
    run = run_load(
        live_service,
        tmp_path,
        users=2,
        duration="3s",
        THRESHOLDS=str(thresholds),
        LOAD_ARGS=users_csv(tmp_path),
    )
    assert run.returncode != 0
    assert "threshold failed: p95" in run.stderr
    assert "threshold failed: throughput" in run.stderr
    assert "threshold failed: failure ratio" not in run.stderr  # the service answered correctly


class _AlwaysOk(BaseHTTPRequestHandler):
    """A server that answers 200 {} to everything: wrong for every request Locust sends."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.fixture
def always_ok_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysOk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_wrong_answers_are_failures_even_with_status_200(always_ok_server, tmp_path):
    run = run_load(always_ok_server, tmp_path, users=3, duration="3s", LOAD_ARGS=users_csv(tmp_path))
    assert run.returncode != 0
    assert "threshold failed: failure ratio 100.00%" in run.stderr
    total = stats_by_name(tmp_path)["Aggregated"]
    assert int(total["Failure Count"]) == int(total["Request Count"]) > 0
    with open(tmp_path / "locust_failures.csv", newline="") as handle:
        errors = {row["Name"]: row["Error"] for row in csv.DictReader(handle)}
    assert "no gender" in errors["predict: one"]


# --- smoke test through a port-forward ----------------------------------------------------------

KUBECTL_RELAY = '''#!{python}
"""kubectl stand-in (no cluster here): port-forward relays LOCAL to the test's API server."""
import contextlib, os, socket, sys, threading
with open({record!r}, "w") as out:
    out.write(" ".join([str(os.getpid()), *sys.argv[1:]]))
local = int(sys.argv[-1].split(":")[0])
server = socket.create_server(("127.0.0.1", local))

def pipe(source, sink):
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)

while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", {target_port}))
    for ends in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=ends, daemon=True).start()
'''
KUBECTL_FAILING = """#!/bin/sh
echo 'error: services "gender-api" not found' >&2
exit 1
"""


def install_kubectl(tmp_path: Path, script: str) -> dict[str, str]:
    """Environment for smoke.sh with `script` as kubectl first on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(script)
    kubectl.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SMOKE_PORT": str(free_port()),
        "SMOKE_PIDFILE": str(tmp_path / "port-forward.pid"),
        "SMOKE_READY_TIMEOUT_S": "20",
    }


def is_running(pid: int) -> bool:
    """True unless the process is gone or a zombie (nobody may reap orphans in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


@pytest.mark.slow
def test_smoke_checks_the_api_through_a_port_forward_runs_the_command_and_ends_it(live_service, tmp_path):
    record = tmp_path / "kubectl-call"
    relay = KUBECTL_RELAY.format(
        python=sys.executable, record=str(record), target_port=live_service.rsplit(":", 1)[1]
    )
    env = install_kubectl(tmp_path, relay)
    run = subprocess.run(
        [str(SMOKE), "curl", "-fsS", f"http://127.0.0.1:{env['SMOKE_PORT']}/healthz"],
        cwd=CHECKOUT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert '"gender"' in run.stdout  # the prediction, printed
    pid, *arguments = record.read_text().split()
    assert arguments == [
        "-n",
        "gender-classifier",
        "port-forward",
        "svc/gender-api",
        f"{env['SMOKE_PORT']}:80",
    ]
    assert not is_running(int(pid)), "smoke.sh left its port-forward running"
    assert not Path(env["SMOKE_PIDFILE"]).exists()


def test_smoke_fails_fast_when_the_port_forward_ends(tmp_path):
    env = install_kubectl(tmp_path, KUBECTL_FAILING)
    run = subprocess.run([str(SMOKE)], cwd=CHECKOUT_DIR, env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert 'services "gender-api" not found' in run.stderr
    assert "port-forward to svc/gender-api in namespace gender-classifier ended" in run.stderr

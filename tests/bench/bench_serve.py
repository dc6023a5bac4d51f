"""Benchmark of the prediction service (`make bench-serve`); prints a table, exits 1 if a target is missed.

Runs the production gunicorn configuration against a model trained on generated data, and the same
configuration serving a bare JSON echo (tests/bench/echo_app.py) as the baseline; load comes from
Debian's `wrk` (C, one thread, keep-alive), which is far from being the bottleneck here.
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from model.artifact import load
from service.settings import ServiceSettings
from tests.fixtures.models import train_model
from tests.fixtures.service import Server, start_server, wait_for

ECHO_APP = "tests.bench.echo_app:create_app()"
SINGLE_USER = {"age": 30, "company": "4You", "name_length": 12}
BATCH_SIZE = 1000
BATCH_ROUNDS = 30
CONNECTIONS = 8
WARMUP_S = 2
TARGETS = {
    "throughput_ratio": 0.8,  # predict req/s ÷ echo req/s, at least
    "p99_ratio": 2.0,  # predict p99 ÷ echo p99, at most
    "batch_ms": 50.0,  # a 1,000-instance batch, at most (p99 of the rounds)
    "ready_s": 3.0,  # from start to /readyz 200 with a model present, at most
    "rss_mb": 200.0,  # resident memory per worker, at most
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, duration_s: int, script: Path) -> tuple[float, float, int]:
    """(requests per second, p99 latency in ms, non-2xx responses + socket errors)."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=duration_s + 30
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures += sum(int(n) for n in errors.groups()) if errors else 0
    return rate, float(value) * _UNITS[unit], failures


def load_test(server: Server, path: str, duration_s: int, workdir: Path) -> tuple[float, float, int]:
    script = workdir / f"{path.strip('/')}.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(SINGLE_USER)))
    wrk(server.url + path, WARMUP_S, script)
    return wrk(server.url + path, duration_s, script)


def worker_rss_mb(server: Server) -> list[float]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024)
    return sizes


def batch_latencies_ms(server: Server) -> list[float]:
    body = json.dumps({"instances": [SINGLE_USER | {"name": f"Jane Doe{i}"} for i in range(BATCH_SIZE)]})
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    timings = []
    for _ in range(BATCH_ROUNDS):
        started = time.perf_counter()
        response = session.post(f"{server.url}/predict_gender", data=body, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and len(response.json()["predictions"]) == BATCH_SIZE
    return timings


def predictor_cost_us(model_dir: Path) -> tuple[str, float]:
    """The model's own cost for one row, in this process: what no server tuning can go below."""
    predictor = load(model_dir).predictor
    rounds = 200
    predictor.predict([SINGLE_USER])
    started = time.perf_counter()
    for _ in range(rounds):
        predictor.predict([SINGLE_USER])
    return predictor.candidate, (time.perf_counter() - started) / rounds * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint")
    parser.add_argument("--users", type=int, default=400, help="generated users to train on")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench-serve needs wrk (Debian: apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        workdir = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "model.sample_data",
                "--out",
                str(workdir / "data"),
                "--users",
                str(args.users),
                "--seed",
                str(args.seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        model_dir = train_model(workdir / "data", workdir / "models")
        candidate, predict_us = predictor_cost_us(model_dir)

        started = time.monotonic()
        api = start_server(workdir / "api.log", model_dir=model_dir)
        try:
            wait_for(api, "/readyz")
            ready_s = time.monotonic() - started
            batch = batch_latencies_ms(api)
            predict = load_test(api, "/predict_gender", args.duration, workdir)
            rss = worker_rss_mb(api)
        finally:
            api.stop()
        echo_server = start_server(workdir / "echo.log", app=ECHO_APP, model_dir=model_dir)
        try:
            echo = load_test(echo_server, "/echo", args.duration, workdir)
        finally:
            echo_server.stop()

    workers = ServiceSettings().workers
    batch_p99 = statistics.quantiles(batch, n=100)[98]
    rows = [
        (f"model.predict 1 row µs ({candidate})", f"{predict_us:.0f}", ""),
        ("echo baseline req/s", f"{echo[0]:.0f}", ""),
        ("predict req/s (single user)", f"{predict[0]:.0f}", ""),
        ("throughput ÷ echo", f"{predict[0] / echo[0]:.2f}", f">= {TARGETS['throughput_ratio']}"),
        ("echo p99 ms", f"{echo[1]:.2f}", ""),
        ("predict p99 ms", f"{predict[1]:.2f}", ""),
        ("p99 ÷ echo p99", f"{predict[1] / echo[1]:.2f}", f"<= {TARGETS['p99_ratio']}"),
        (f"batch of {BATCH_SIZE} median ms", f"{statistics.median(batch):.1f}", ""),
        (f"batch of {BATCH_SIZE} p99 ms", f"{batch_p99:.1f}", f"< {TARGETS['batch_ms']}"),
        ("ready after start s", f"{ready_s:.2f}", f"<= {TARGETS['ready_s']}"),
        (f"max RSS of {workers} workers MB", f"{max(rss):.0f}", f"< {TARGETS['rss_mb']}"),
        ("failed requests under load", f"{predict[2] + echo[2]}", "== 0"),
    ]
    verdicts = [
        predict[0] / echo[0] >= TARGETS["throughput_ratio"],
        predict[1] / echo[1] <= TARGETS["p99_ratio"],
        batch_p99 < TARGETS["batch_ms"],
        ready_s <= TARGETS["ready_s"],
        max(rss) < TARGETS["rss_mb"],
        predict[2] + echo[2] == 0,
    ]
    print(f"\n{'measure':<32} {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<32} {value:>10}  {target}")
    print(f"\n{CONNECTIONS} connections, {args.duration} s per endpoint, {workers} sync workers")
    missed = verdicts.count(False)
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

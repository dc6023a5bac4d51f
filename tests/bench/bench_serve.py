"""Benchmark of the prediction service (`make bench-serve`); prints a table, exits 1 if a target is missed.

Runs the production gunicorn configuration against a model trained on generated data, and the same
configuration serving a bare JSON echo (tests/bench/echo_app.py) as the baseline; load comes from
Debian's `wrk` (C, one thread), which is far from being the bottleneck here.

Both servers stay up and take turns, round after round: on a shared machine the throughput of either
drifts from minute to minute, so a ratio from one run each mostly measures that drift. The ratios
reported are the medians over the rounds; worker CPU per request (from /proc) is printed too, being
what the application code controls.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import requests

from model.artifact import load
from model.signing import read_trusted_keys
from service.settings import ServiceSettings
from tests.fixtures.models import train_model
from tests.fixtures.service import Server, start_server, wait_for
from tests.support.raw_http import PartialRequest

ECHO_APP = "tests.bench.echo_app:create_app()"
SINGLE_USER = {"age": 30, "company": "4You", "name_length": 12}
BATCH_SIZE = 1000
BATCH_ROUNDS = 30
SLOW_CLIENTS = 50  # connections that sent their headers and half their body, then wait
BESIDE_SLOW_ROUNDS = 50
CONNECTIONS = 8
WARMUP_S = 2
ROUNDS = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "throughput_ratio": 0.8,  # predict req/s ÷ echo req/s, at least
    "p99_ratio": 2.0,  # predict p99 ÷ echo p99, at most
    "batch_ms": 50.0,  # a 1,000-instance batch, at most (p99 of the rounds)
    "ready_s": 3.0,  # from start to /readyz 200 with a model present, at most
    "rss_mb": 200.0,  # resident memory per worker, at most
    "beside_slow_ms": 100.0,  # slowest prediction while SLOW_CLIENTS hold connections, at most
    "ready_beside_slow_ms": 1000.0,  # slowest /readyz meanwhile, at most
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class Load(NamedTuple):
    rate: float  # requests per second
    p99_ms: float
    failures: int  # non-2xx responses and socket errors
    cpu_us: float  # CPU time of the gunicorn workers per request


def wrk(url: str, duration_s: int, script: Path) -> tuple[float, float, int, int]:
    """(requests per second, p99 latency in ms, non-2xx responses + socket errors, requests)."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=duration_s + 30
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures += sum(int(n) for n in errors.groups()) if errors else 0
    requests_done = int(re.search(r"(\d+) requests in", output).group(1))
    return rate, float(value) * _UNITS[unit], failures, requests_done


def worker_pids(server: Server) -> list[str]:
    return Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()


def workers_cpu_s(server: Server) -> float:
    """User + system CPU seconds of the server's live workers."""
    ticks = 0
    for pid in worker_pids(server):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks / CLOCK_TICKS


def wrk_script(workdir: Path, path: str) -> Path:
    script = workdir / f"{path.strip('/')}.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(SINGLE_USER)))
    return script


def load_round(server: Server, path: str, duration_s: int, script: Path) -> Load:
    cpu_before = workers_cpu_s(server)
    rate, p99_ms, failures, requests_done = wrk(server.url + path, duration_s, script)
    cpu_us = (workers_cpu_s(server) - cpu_before) / requests_done * 1e6
    return Load(rate, p99_ms, failures, cpu_us)


def worker_rss_mb(server: Server) -> list[float]:
    sizes = []
    for pid in worker_pids(server):
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024)
    return sizes


def take_turns(
    echo_server: Server, api: Server, workdir: Path, duration_s: int, rounds: int
) -> tuple[list[Load], list[Load]]:
    """Load the echo, then the API, `rounds` times; after one warm-up run of each."""
    runs = {"echo": [], "predict": []}
    targets = {"echo": (echo_server, "/echo"), "predict": (api, "/predict_gender")}
    scripts = {name: wrk_script(workdir, path) for name, (_, path) in targets.items()}
    for name, (server, path) in targets.items():
        wrk(server.url + path, WARMUP_S, scripts[name])
    for _ in range(rounds):
        for name, (server, path) in targets.items():
            runs[name].append(load_round(server, path, duration_s, scripts[name]))
    return runs["echo"], runs["predict"]


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


def beside_slow_clients_ms(server: Server) -> tuple[float, float]:
    """(slowest prediction, slowest /readyz) in ms while SLOW_CLIENTS hold connections mid-body."""
    body = json.dumps(SINGLE_USER).encode()
    stuck = [PartialRequest(server.url, "POST", "/predict_gender", body) for _ in range(SLOW_CLIENTS)]
    time.sleep(0.5)  # every one accepted and waiting for the rest of its body

    def slowest_ms(method: str, path: str, **kwargs) -> float:
        slowest = 0.0
        for _ in range(BESIDE_SLOW_ROUNDS):
            started = time.perf_counter()
            response = requests.request(method, server.url + path, timeout=30, **kwargs)
            slowest = max(slowest, (time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        return slowest

    try:
        return slowest_ms("POST", "/predict_gender", json=SINGLE_USER), slowest_ms("GET", "/readyz")
    finally:
        for request in stuck:
            request.finish()


def predictor_cost_us(model_dir: Path) -> tuple[str, float]:
    """The model's own cost for one row, in this process: what no server tuning can go below."""
    predictor = load(model_dir, read_trusted_keys(ServiceSettings.from_env().trusted_keys_dir)).predictor
    rounds = 200
    predictor.predict([SINGLE_USER])
    started = time.perf_counter()
    for _ in range(rounds):
        predictor.predict([SINGLE_USER])
    return predictor.candidate, (time.perf_counter() - started) / rounds * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per endpoint and round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="turns each server takes")
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
            beside_slow_ms, ready_beside_slow_ms = beside_slow_clients_ms(api)
            echo_server = start_server(workdir / "echo.log", app=ECHO_APP, model_dir=model_dir)
            try:
                echo, predict = take_turns(echo_server, api, workdir, args.duration, args.rounds)
            finally:
                echo_server.stop()
            rss = worker_rss_mb(api)
        finally:
            api.stop()

    worker_count = ServiceSettings().workers
    batch_p99 = statistics.quantiles(batch, n=100)[98]
    throughput = [p.rate / e.rate for e, p in zip(echo, predict, strict=True)]
    p99 = [p.p99_ms / e.p99_ms for e, p in zip(echo, predict, strict=True)]
    failures = sum(run.failures for run in echo + predict)

    def median(runs: list[Load], field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs)

    rows = [
        (f"model.predict 1 row µs ({candidate})", f"{predict_us:.0f}", ""),
        ("echo baseline req/s", f"{median(echo, 'rate'):.0f}", ""),
        ("predict req/s (single user)", f"{median(predict, 'rate'):.0f}", ""),
        ("throughput ÷ echo", f"{statistics.median(throughput):.2f}", f">= {TARGETS['throughput_ratio']}"),
        ("  lowest, highest round", f"{min(throughput):.2f}, {max(throughput):.2f}", ""),
        ("echo worker CPU µs/request", f"{median(echo, 'cpu_us'):.0f}", ""),
        ("predict worker CPU µs/request", f"{median(predict, 'cpu_us'):.0f}", ""),
        ("echo p99 ms", f"{median(echo, 'p99_ms'):.2f}", ""),
        ("predict p99 ms", f"{median(predict, 'p99_ms'):.2f}", ""),
        ("p99 ÷ echo p99", f"{statistics.median(p99):.2f}", f"<= {TARGETS['p99_ratio']}"),
        (f"batch of {BATCH_SIZE} median ms", f"{statistics.median(batch):.1f}", ""),
        (f"batch of {BATCH_SIZE} p99 ms", f"{batch_p99:.1f}", f"< {TARGETS['batch_ms']}"),
        (
            f"slowest predict beside {SLOW_CLIENTS} slow clients ms",
            f"{beside_slow_ms:.1f}",
            f"<= {TARGETS['beside_slow_ms']}",
        ),
        (
            f"slowest /readyz beside {SLOW_CLIENTS} slow clients ms",
            f"{ready_beside_slow_ms:.1f}",
            f"<= {TARGETS['ready_beside_slow_ms']}",
        ),
        ("ready after start s", f"{ready_s:.2f}", f"<= {TARGETS['ready_s']}"),
        (f"max RSS of {worker_count} workers MB", f"{max(rss):.0f}", f"< {TARGETS['rss_mb']}"),
        ("failed requests under load", f"{failures}", "== 0"),
    ]
    verdicts = [
        statistics.median(throughput) >= TARGETS["throughput_ratio"],
        statistics.median(p99) <= TARGETS["p99_ratio"],
        batch_p99 < TARGETS["batch_ms"],
        beside_slow_ms <= TARGETS["beside_slow_ms"],
        ready_beside_slow_ms <= TARGETS["ready_beside_slow_ms"],
        ready_s <= TARGETS["ready_s"],
        max(rss) < TARGETS["rss_mb"],
        failures == 0,
    ]
    print(f"\n{'measure':<44} {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<44} {value:>10}  {target}")
    print(
        f"\n{CONNECTIONS} connections, {args.rounds} rounds of {args.duration} s per endpoint "
        f"(medians shown), {worker_count} gevent workers"
    )
    missed = verdicts.count(False)
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

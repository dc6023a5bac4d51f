"""A real Prometheus and a real Pushgateway (Debian's packages) for tests, each on a free loopback port.

    jobs = [scrape_job("gender-api", ["127.0.0.1:5000"])]
    with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[RULES_FILE]) as prometheus:
        prometheus.wait_for_data("gender_api_model_info == 1")
        prometheus.query("gender_api:input_psi:rate1h")
        prometheus.alerts()

The Pushgateway is scraped as `scrape_job("gender-pushgateway", [gateway.address], honor_labels=True)`.

Prometheus scrapes every second and evaluates its rules every second, so a test sees a change within
a few seconds. Each process writes its log to its directory; a failed wait shows it.
"""

import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures.service import Server, free_port
from tests.support.polling import wait_until

REPO_DIR = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_DIR / "manifests" / "components" / "monitoring" / "prometheus"
RULES_FILE = RULES_DIR / "rules.yaml"
RULES_TEST_FILE = RULES_DIR / "rules.test.yaml"

# The Debian package that ships each binary, for the message when one is missing.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
}
INTERVAL = "1s"
START_TIMEOUT_S = 60.0
DATA_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0


def tool(name: str) -> str:
    """The path of one of the Prometheus binaries; fails the test (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required: apt-get install {PACKAGES[name]}", pytrace=False)
    return path


class Prometheus(Server):
    def _get(self, path: str, **params: str) -> dict:
        answer = requests.get(self.url + path, params=params, timeout=HTTP_TIMEOUT_S)
        body = answer.json()  # an error answers 4xx/5xx with a JSON body that says why
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list:
        """The result of an instant query now (vector: [{"metric": {...}, "value": [t, "v"]}, ...])."""
        return self._get("/api/v1/query", query=expr)["result"]

    def alerts(self) -> list:
        """The alerts pending or firing now: [{"labels": {...}, "state": "pending"|"firing", ...}, ...]."""
        return self._get("/api/v1/alerts")["alerts"]

    def wait_for_data(self, expr: str, timeout_s: float = DATA_TIMEOUT_S) -> list:
        """Wait until `expr` returns at least one series, and return them."""
        return wait_until(
            lambda: _still_running(self) and self.query(expr),
            timeout_s,
            0.5,
            lambda: f"{expr} returned nothing within {timeout_s} s:\n{self.log()}",
        )


class Pushgateway(Server):
    @property
    def address(self) -> str:
        """host:port, as a scrape target and as push_to_gateway's gateway."""
        return self.url.removeprefix("http://")


def scrape_job(name: str, targets: Iterable[str], honor_labels: bool = False) -> dict:
    """One scrape_configs entry: static `host:port` targets scraped every second at /metrics."""
    return {
        "job_name": name,
        "scrape_interval": INTERVAL,
        "honor_labels": honor_labels,
        "static_configs": [{"targets": list(targets)}],
    }


@contextmanager
def running_prometheus(
    directory: Path, scrape_configs: Sequence[dict], rule_files: Sequence[Path] = ()
) -> Iterator[Prometheus]:
    """A Prometheus with its config, TSDB and log in `directory`, ready; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": list(scrape_configs),
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    command = [
        tool("prometheus"),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _started(Prometheus, command, port, directory / "prometheus.log") as prometheus:
        yield prometheus


@contextmanager
def running_pushgateway(directory: Path) -> Iterator[Pushgateway]:
    """A Pushgateway (no persistence) logging to `directory`, ready; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # An empty persistence file keeps the metrics in memory: Debian's default file is shared by
    # every Pushgateway on the machine, and a test must start from an empty one.
    command = [
        tool("prometheus-pushgateway"),
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
    ]
    with _started(Pushgateway, command, port, directory / "pushgateway.log") as gateway:
        yield gateway


@contextmanager
def _started(kind: type[Server], command: list[str], port: int, log_path: Path) -> Iterator:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = kind(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(
            lambda: _ready(server),
            START_TIMEOUT_S,
            0.1,
            lambda: f"{command[0]} was not ready within {START_TIMEOUT_S} s:\n{server.log()}",
        )
        yield server
    finally:
        server.stop()


def _still_running(server: Server) -> bool:
    """True, or raises with the log when the process has exited: a wait on it would only time out."""
    if server.process.poll() is not None:
        name = Path(server.process.args[0]).name
        raise AssertionError(f"{name} exited with {server.process.returncode}:\n{server.log()}")
    return True


def _ready(server: Server) -> bool:
    _still_running(server)
    try:
        return requests.get(server.url + "/-/ready", timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet
        return False

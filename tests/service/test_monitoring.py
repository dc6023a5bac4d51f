"""Monitoring end to end, nothing mocked: the jobs push to a real Pushgateway; a real Prometheus
with the project's rules scrapes it and the real API under Locust load; the drift alerts stay quiet
for traffic like the training users and go pending for a shifted population; every dashboard panel
is answered."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from model import drift
from tests.fixtures.models import job_env, run_job
from tests.fixtures.service import start_server, wait_for
from tests.support.dashboards import DASHBOARD_FILES, load, panel_queries
from tests.support.load import run_load
from tests.support.polling import wait_until
from tests.support.prometheus import RULES_FILE, running_prometheus, running_pushgateway, scrape_job

pytestmark = pytest.mark.slow

LOAD_USERS = 10
LOAD_DURATION = "20s"
SCRAPE_WAIT_S = 30
DRIFT_ALERTS = {"GenderInputDrift", "GenderClassBalanceShift"}


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    with running_pushgateway(tmp_path_factory.mktemp("pushgateway")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def jobs_run(tmp_path_factory, sample_data_dir, pushgateway) -> Path:
    """The work directory of a retrain and a batch run that pushed their metrics."""
    work = tmp_path_factory.mktemp("jobs")
    env = job_env(work, sample_data_dir, GENDER_PUSHGATEWAY_URL=pushgateway.url)
    for module in ("jobs.retrain", "jobs.batch_predict"):
        done = run_job(module, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "not pushed" not in done.stdout + done.stderr
    return work


@contextmanager
def monitored_api(directory: Path, model_dir: Path, pushgateway) -> Iterator[tuple]:
    """A fresh API on the model, and a Prometheus with the rules scraping it and the Pushgateway."""
    api = start_server(directory / "gunicorn.log", model_dir=model_dir)
    try:
        wait_for(api, "/readyz")
        jobs = [
            scrape_job("gender-api", [api.url.removeprefix("http://")]),
            scrape_job("gender-pushgateway", [pushgateway.address], honor_labels=True),
        ]
        with running_prometheus(directory / "prometheus", jobs, rule_files=[RULES_FILE]) as prometheus:
            prometheus.wait_for_data("gender_api_model_info == 1")
            yield api, prometheus
    finally:
        api.stop()


def psi_by_feature(prometheus) -> dict[str, float]:
    return {
        row["metric"]["feature"]: float(row["value"][1])
        for row in prometheus.query("gender_api:input_psi:rate1h")
    }


def put_load(api, directory: Path, traffic: str) -> None:
    run = run_load(
        api.url, directory, users=LOAD_USERS, duration=LOAD_DURATION, LOAD_ARGS=f"--traffic {traffic}"
    )
    assert run.returncode == 0, run.stderr[-3000:]


def test_training_like_traffic_keeps_drift_quiet_and_every_dashboard_panel_has_data(
    tmp_path, jobs_run, pushgateway
):
    with monitored_api(tmp_path, jobs_run / "models", pushgateway) as (api, prometheus):
        put_load(api, tmp_path / "load", "training")
        # The last scrapes after the load are in once every feature's PSI reflects it.
        psi = wait_until(
            lambda: (found := psi_by_feature(prometheus)) and len(found) == len(drift.FEATURES) and found,
            SCRAPE_WAIT_S,
            1,
            lambda: f"PSI per feature: {psi_by_feature(prometheus)}",
        )
        assert max(psi.values()) < drift.PSI_ALERT, psi
        assert not {alert["labels"]["alertname"] for alert in prometheus.alerts()} & DRIFT_ALERTS

        # The jobs' pushed metrics are in Prometheus.
        for job, metric in [
            ("gender-retrain", "gender_job_gate_promoted"),
            ("gender-retrain", "gender_job_grouped_accuracy"),
            ("gender-batch-predict", "gender_job_rows"),
            ("gender-batch-predict", "gender_job_input_psi"),
        ]:
            assert prometheus.query(f'{metric}{{job="{job}"}}'), (job, metric)
        (promoted,) = prometheus.query('gender_job_gate_promoted{job="gender-retrain"}')
        assert float(promoted["value"][1]) == 1

        empty = [
            (path.name, title, expr)
            for path in DASHBOARD_FILES
            for title, expr in panel_queries(load(path))
            if not prometheus.query(expr)
        ]
        assert empty == [], "dashboard panels without data"


def test_a_shifted_population_raises_the_drift_metric_and_its_alert_goes_pending(
    tmp_path, jobs_run, pushgateway
):
    with monitored_api(tmp_path, jobs_run / "models", pushgateway) as (api, prometheus):
        put_load(api, tmp_path / "load", "shifted")

        def drifted() -> set[str]:
            return {
                alert["labels"]["feature"]
                for alert in prometheus.alerts()
                if alert["labels"]["alertname"] == "GenderInputDrift" and alert["state"] == "pending"
            }

        # Every user is 18 to 22 with a first name no statistics list.
        pending = wait_until(
            lambda: {"age", "first_name"} <= (found := drifted()) and found,
            SCRAPE_WAIT_S,
            1,
            lambda: f"pending: {drifted()}; PSI: {psi_by_feature(prometheus)}",
        )
        psi = psi_by_feature(prometheus)
        assert psi["age"] > drift.PSI_ALERT and psi["first_name"] > drift.PSI_ALERT, psi
        assert psi["company"] < drift.PSI_ALERT, "inputs the shift leaves alone do not drift"
        assert "company" not in pending

"""The real-Prometheus test helpers work: a pushed gauge reaches Prometheus through a real Pushgateway,
the rules file loads, and a bad query raises with Prometheus' own error text."""

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.support.polling import wait_until
from tests.support.prometheus import RULES_FILE, running_prometheus, running_pushgateway, scrape_job

pytestmark = pytest.mark.slow


def test_a_gauge_pushed_to_the_pushgateway_is_queryable_in_prometheus(tmp_path):
    with (
        running_pushgateway(tmp_path / "pushgateway") as gateway,
        running_prometheus(
            tmp_path / "prometheus",
            [scrape_job("gender-pushgateway", [gateway.address], honor_labels=True)],
            rule_files=[RULES_FILE],
        ) as prometheus,
    ):
        registry = CollectorRegistry()
        Gauge("gender_job_rows", "Users scored", registry=registry).set(42)
        push_to_gateway(gateway.address, job="gender-batch-predict", registry=registry)

        (series,) = prometheus.wait_for_data('gender_job_rows{job="gender-batch-predict"}')
        assert float(series["value"][1]) == 42
        # The rules file is loaded and evaluated: with no API scraped, no pod serves a model.
        wait_until(
            lambda: [a for a in prometheus.alerts() if a["labels"]["alertname"] == "GenderApiNoModel"],
            10,
            0.5,
            lambda: f"GenderApiNoModel is not pending: {prometheus.alerts()}",
        )
        with pytest.raises(AssertionError, match="parse error"):
            prometheus.query("sum(")

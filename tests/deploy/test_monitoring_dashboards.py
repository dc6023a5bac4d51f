"""The Grafana dashboards: they import into any Grafana (datasource picked at import), every panel has a
query, and every query is PromQL a real Prometheus accepts."""

import pytest

from tests.support.dashboards import DASHBOARD_FILES, DASHBOARDS_DIR, load, panel_queries, panels, substitute
from tests.support.prometheus import running_prometheus

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_every_dashboard_file_is_tested():
    assert sorted(DASHBOARDS_DIR.glob("*.json")) == sorted(DASHBOARD_FILES)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda path: path.name)
def test_dashboard_imports_into_any_grafana(path):
    dashboard = load(path)
    assert dashboard["uid"] == path.stem
    assert dashboard["schemaVersion"] == 39
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    for panel in panels(dashboard):
        assert panel["targets"], f"{panel['title']} has no query"
        sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        assert all(source == DATASOURCE for source in sources), f"{panel['title']}: a hard-coded datasource"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, f"${variable['name']}: a hard-coded datasource"


@pytest.mark.slow
def test_every_query_is_valid_promql(tmp_path):
    queries = [query for path in DASHBOARD_FILES for query in panel_queries(load(path))]
    assert queries
    # promtool 2.42 cannot parse a query alone. An empty Prometheus answers a valid query with an
    # empty result and an invalid one with an error.
    with running_prometheus(tmp_path, []) as prometheus:
        errors = []
        for title, expr in queries:
            try:
                prometheus.query(expr)
            except AssertionError as error:
                errors.append(f"{title}: {expr}\n  {error}")
    assert not errors, "\n".join(errors)


def test_substitute_fills_grafanas_variables_and_refuses_unknown_ones():
    expr = 'rate(x{feature="$feature"}[$__rate_interval]) + rate(y{feature="${feature}"}[${__interval}])'
    assert substitute(expr) == 'rate(x{feature="age"}[1m]) + rate(y{feature="age"}[1m])'
    with pytest.raises(KeyError, match=r"\$instance"):
        substitute('up{instance="$instance"}')

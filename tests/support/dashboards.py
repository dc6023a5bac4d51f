"""The Grafana dashboards' PromQL with Grafana's variables filled in, to run on a real Prometheus."""

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

DASHBOARDS_DIR = (
    Path(__file__).resolve().parents[2] / "manifests" / "components" / "monitoring-operator" / "dashboards"
)
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
# What Grafana would put in: a real feature of model/drift.py, and a rate window that holds a few of
# the tests' 1 s scrapes.
VARIABLES = {"feature": "age", "__rate_interval": "1m", "__interval": "1m"}
# $name, ${name} and ${name:format}, as Grafana writes them.
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: Mapping) -> Iterator[dict]:
    """Every panel that shows data: rows are left out, a collapsed row's own panels included."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def substitute(expr: str, variables: Mapping[str, str] = VARIABLES) -> str:
    """`expr` with Grafana's variables replaced; an unknown one raises KeyError naming it."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for the dashboard variable ${name} in {expr!r}")
        return variables[name]

    return VARIABLE.sub(value, expr)


def panel_queries(dashboard: Mapping, variables: Mapping[str, str] = VARIABLES) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, in the dashboard's order."""
    return [
        (panel["title"], substitute(target["expr"], variables))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]

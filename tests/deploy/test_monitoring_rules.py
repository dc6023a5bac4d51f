"""The Prometheus rules file: promtool accepts it and its unit tests pass, every rule is unit-tested, every
alert documented, and the latency alert keeps the load gate's threshold."""

import re
import subprocess
import tomllib

import pytest
import yaml

from tests.support.prometheus import REPO_DIR, RULES_DIR, RULES_FILE, RULES_TEST_FILE, tool
from tests.support.rules import rules_with_short_for

THRESHOLDS_FILE = REPO_DIR / "load" / "thresholds.toml"
ANNOTATIONS = {"summary", "description", "runbook"}
SEVERITIES = {"warning", "critical"}


def rules_of(text: str) -> list[dict]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    return rules_of(RULES_FILE.read_text())


@pytest.fixture(scope="module")
def unit_tests() -> list[dict]:
    return yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]


def promtool(*args: str, cwd=RULES_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules_file():
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", RULES_TEST_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_documented_and_unit_tested(rules, unit_tests):
    alerts = [rule for rule in rules if "alert" in rule]
    assert alerts
    tested = {case["alertname"] for test in unit_tests for case in test.get("alert_rule_test", [])}
    for alert in alerts:
        name = alert["alert"]
        missing = {key for key in ANNOTATIONS if not alert.get("annotations", {}).get(key, "").strip()}
        assert not missing, f"{name} has no {sorted(missing)}"
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity not in {SEVERITIES}"
        assert name in tested, f"{name} has no alert_rule_test in {RULES_TEST_FILE.name}"


def test_every_recording_rule_is_evaluated_by_a_unit_test(rules, unit_tests):
    exprs = [case["expr"] for test in unit_tests for case in test.get("promql_expr_test", [])]
    for name in (rule["record"] for rule in rules if "record" in rule):
        used = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])")
        assert any(used.search(expr) for expr in exprs), f"{name} has no promql_expr_test"


def test_latency_alert_uses_the_load_gates_p99(rules):
    max_p99_s = tomllib.loads(THRESHOLDS_FILE.read_text())["max_p99_ms"] / 1000
    (alert,) = [rule for rule in rules if rule.get("alert") == "GenderApiLatencyHigh"]
    match = re.fullmatch(r'\S+\{endpoint="/predict_gender"\} > ([0-9.]+)', alert["expr"].strip())
    assert match, f"unexpected form of GenderApiLatencyHigh: {alert['expr']}"
    assert float(match.group(1)) == max_p99_s, f"{RULES_FILE.name} and {THRESHOLDS_FILE.name} disagree"


def test_rules_with_short_for_shortens_only_the_for_clauses(tmp_path):
    text = RULES_FILE.read_text()
    original, short = rules_of(text), rules_of(rules_with_short_for(text, for_="5s"))
    assert any("for" in rule for rule in original)
    assert len(short) == len(original)
    for before, after in zip(original, short, strict=True):
        if "for" in before:
            assert after.pop("for") == "5s"
            before = {key: value for key, value in before.items() if key != "for"}
        assert after == before
    # The copy is still a rules file Prometheus loads.
    copy = tmp_path / "rules.yaml"
    copy.write_text(rules_with_short_for(text))
    result = promtool("check", "rules", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr

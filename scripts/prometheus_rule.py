"""Write the Prometheus Operator's PrometheusRule from the one rules file (`make prometheus-rule`).

kustomize reads only files under a component's own folder, so components/monitoring-operator
cannot take components/monitoring/prometheus/rules.yaml as it is: this script wraps that file's
groups in a PrometheusRule, with the `release` label kube-prometheus-stack's ruleSelector matches.
tests/deploy/test_monitoring.py fails when the committed file is out of date.

    python scripts/prometheus_rule.py [--out OUT]
"""

import argparse
from pathlib import Path

import yaml

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
RULES = Path("manifests/components/monitoring/prometheus/rules.yaml")
OUT = Path("manifests/components/monitoring-operator/prometheusrule.yaml")
# The Helm release name of a default kube-prometheus-stack install; manifests/README.md says how
# an overlay sets another.
RELEASE = "kube-prometheus-stack"
LABELS = {
    "app.kubernetes.io/name": "gender-classifier",
    "app.kubernetes.io/component": "monitoring",
    "app.kubernetes.io/part-of": "gender-classifier",
    "app.kubernetes.io/managed-by": "kustomize",
    "release": RELEASE,
}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the rules' expressions and descriptions) as literal blocks, as written."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


HEADER = (
    f"# Generated from {RULES} by scripts/prometheus_rule.py;\n"
    "# edit that file and run `make prometheus-rule`.\n"
)


def prometheus_rule(rules_text: str) -> str:
    """The PrometheusRule document carrying the groups of a Prometheus rule file, with its header."""
    groups = yaml.safe_load(rules_text)["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "gender-classifier", "namespace": "gender-classifier", "labels": LABELS},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the file to write (default {OUT})")
    args = parser.parse_args(argv)
    out = args.out if args.out.is_absolute() else CHECKOUT_DIR / args.out
    out.write_text(prometheus_rule((CHECKOUT_DIR / RULES).read_text()))


if __name__ == "__main__":
    main()

"""The two monitoring routes of manifests/components: the plain Prometheus (components/monitoring)
loads the one rules file and scrapes the API and the Pushgateway as the rules expect, and its
configuration passes the real `promtool check config`; the Prometheus Operator's
(components/monitoring-operator) carries the same rules as a PrometheusRule generated from that
file (`make prometheus-rule`), ServiceMonitors that give the same job names, and the dashboards;
its objects validate against the operator's CRD schemas (tests/support/validate_crds.mjs). In both,
the NetworkPolicies let Prometheus scrape and the jobs push, nothing more.

promtool is Debian's (package `prometheus`), whose build leaves out Kubernetes service discovery:
the check runs on a copy whose kubernetes_sd_configs are replaced by static targets, and the
discovery itself is checked field by field here.
"""

import copy
import ipaddress
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.manifests import MANIFESTS, find, pod_templates, rendered_objects, selects, validate_crds

NAMESPACE = "gender-classifier"
PLAIN = "manifests/tests/minikube-with-monitoring"
PROMETHEUS_DIR = MANIFESTS / "components" / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yaml"
MOUNTED_RULES = "/etc/prometheus/rules.yaml"
PROMTOOL_TIMEOUT_S = 60
# The scrape jobs the rules and dashboards name (briefs: job="gender-api", job="gender-pushgateway").
SCRAPED = {"gender-api": ("gender-api", 5000), "gender-pushgateway": ("gender-pushgateway", 9091)}
API_SERVER_PORTS = (443, 6443, 8443)
# Stand-ins for what lives outside the namespace.
API_SERVER = {"ip": "10.96.0.1"}
ELSEWHERE = {"namespace": "default", "labels": {"app": "anything"}}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: install Debian's prometheus package")
    return path


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())


def scrape_job(config: dict, name: str) -> dict:
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == name]
    return job


def test_the_configuration_passes_promtool(config, tmp_path):
    assert config["rule_files"] == [MOUNTED_RULES]
    local = dict(config, rule_files=[str(RULES)])
    local["scrape_configs"] = [
        {
            **{k: v for k, v in job.items() if k != "kubernetes_sd_configs"},
            "static_configs": [{"targets": ["127.0.0.1:1"]}],
        }
        for job in config["scrape_configs"]
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(local))
    checked = subprocess.run(
        [promtool(), "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_promtool_rejects_a_broken_configuration(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": [{"job_name": "x", "scrape_interval": "often"}]}))
    checked = subprocess.run(
        [promtool(), "check", "config", str(path)], capture_output=True, timeout=PROMTOOL_TIMEOUT_S
    )
    assert checked.returncode != 0


def kept(job: dict, labels: dict[str, str]) -> bool:
    """Whether the job's keep rules keep a discovered target with these meta labels."""
    for rule in job.get("relabel_configs", []):
        if rule.get("action") != "keep":
            continue
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        if not re.fullmatch(rule["regex"], value):
            return False
    return True


@pytest.mark.parametrize("job_name", sorted(SCRAPED))
def test_each_job_discovers_its_pods_in_the_namespace_only(config, job_name):
    job = scrape_job(config, job_name)
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery == {"role": "pod", "namespaces": {"own_namespace": True}}
    assert job.get("honor_labels", False) is (job_name == "gender-pushgateway")
    objects = rendered_objects(PLAIN)
    ports = {
        (template["metadata"]["labels"]["app.kubernetes.io/name"], port["containerPort"])
        for _, template in pod_templates(objects)
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    targets = {
        (name, port)
        for name, port in ports
        if kept(
            job,
            {
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": name,
                "__meta_kubernetes_pod_container_port_number": str(port),
            },
        )
    }
    assert targets == {SCRAPED[job_name]}
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_mounts_the_configuration_and_the_rules_it_names():
    objects = rendered_objects(PLAIN)
    spec = find(objects, "Deployment", "gender-prometheus")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (volume,) = [v for v in spec["volumes"] if "configMap" in v and v["name"] == "config"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "config"]
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
    assert mount["mountPath"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in container["args"]
    assert config_map["data"]["prometheus.yml"] == (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert config_map["data"]["rules.yaml"] == RULES.read_text()
    assert any(arg.startswith("--storage.tsdb.retention.") for arg in container["args"])


# --- NetworkPolicies --------------------------------------------------------------------------------


def peer_matches(peer: dict, other: dict) -> bool:
    """Whether a NetworkPolicy peer of a policy in NAMESPACE matches `other` (a pod: namespace and
    labels; or an address outside the cluster's pods: ip)."""
    if "ipBlock" in peer:
        return "ip" in other and ipaddress.ip_address(other["ip"]) in ipaddress.ip_network(
            peer["ipBlock"]["cidr"]
        )
    if "ip" in other:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other["namespace"]}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other["namespace"] != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), other["labels"])


def admitted(policies: list[dict], direction: str, pod: dict, other: dict, port: int) -> bool:
    """Whether the policies selecting `pod` (in NAMESPACE) admit traffic with `other` on TCP `port`;
    direction "Ingress" (other -> pod) or "Egress" (pod -> other). No policy selecting it: admitted."""
    selecting = [
        p
        for p in policies
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod["labels"])
    ]
    if not selecting:
        return True
    peers_key = "from" if direction == "Ingress" else "to"
    for policy in selecting:
        for rule in policy["spec"].get(direction.lower(), []):
            ports = rule.get("ports")
            if ports is not None and not any(
                p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in ports
            ):
                continue
            peers = rule.get(peers_key)
            if peers is None or any(peer_matches(peer, other) for peer in peers):
                return True
    return False


def connects(objects: list[dict], source: dict, target: dict, port: int) -> bool:
    """Whether `source` reaches `target` on TCP `port` under the rendered NetworkPolicies: the
    source's egress and the target's ingress must both admit it (each only where it is our pod)."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return (not in_namespace(source) or admitted(policies, "Egress", source, target, port)) and (
        not in_namespace(target) or admitted(policies, "Ingress", target, source, port)
    )


def in_namespace(end: dict) -> bool:
    return "ip" not in end and end["namespace"] == NAMESPACE


def pods(objects: list[dict]) -> dict[str, dict]:
    """component label -> the pod (namespace and labels) of each pod template."""
    return {
        t["metadata"]["labels"]["app.kubernetes.io/component"]: {
            "namespace": NAMESPACE,
            "labels": t["metadata"]["labels"],
        }
        for _, t in pod_templates(objects)
    }


def test_the_plain_prometheus_scrapes_discovers_and_nothing_more():
    objects = rendered_objects(PLAIN)
    pod = pods(objects)
    prometheus = pod["prometheus"]
    assert connects(objects, prometheus, pod["api"], 5000)
    assert connects(objects, prometheus, pod["pushgateway"], 9091)
    assert all(connects(objects, prometheus, API_SERVER, port) for port in API_SERVER_PORTS)
    assert not connects(objects, prometheus, pod["mlflow"], 5000)
    assert not connects(objects, prometheus, pod["api"], 9091)
    assert not connects(objects, prometheus, API_SERVER, 80)
    # Its UI: from the namespace, not from elsewhere (`kubectl port-forward` needs no rule).
    neighbour = {"namespace": NAMESPACE, "labels": {"app": "grafana"}}
    assert admitted(
        [o for o in objects if o["kind"] == "NetworkPolicy"], "Ingress", prometheus, neighbour, 9090
    )
    assert not connects(objects, ELSEWHERE, prometheus, 9090)


def test_only_the_jobs_push_and_only_prometheus_scrapes_the_pushgateway():
    objects = rendered_objects(PLAIN)
    pod = pods(objects)
    pushgateway = pod["pushgateway"]
    assert connects(objects, pod["trainer"], pushgateway, 9091)
    assert connects(objects, pod["batch"], pushgateway, 9091)
    for component in ("api", "mlflow"):
        assert not connects(objects, pod[component], pushgateway, 9091), component
    assert not connects(objects, ELSEWHERE, pushgateway, 9091)
    assert not connects(objects, pod["trainer"], pushgateway, 9090)
    # The pushgateway itself sends nothing, and the jobs still reach MLflow as before.
    assert not connects(objects, pushgateway, pod["api"], 5000)
    assert connects(objects, pod["trainer"], pod["mlflow"], 5000)
    assert not connects(objects, pod["trainer"], pod["api"], 5000)


def test_the_policy_evaluator_denies_what_no_rule_allows():
    objects = rendered_objects("manifests/overlays/minikube")
    pod = pods(objects)
    # Default deny in the overlay alone: the jobs reach MLflow, nothing reaches the jobs.
    assert connects(objects, pod["batch"], pod["mlflow"], 5000)
    assert not connects(objects, pod["mlflow"], pod["batch"], 5000)
    assert connects(objects, ELSEWHERE, pod["api"], 5000)
    assert not connects(objects, pod["api"], ELSEWHERE, 5000)


def test_the_jobs_are_told_where_to_push():
    objects = rendered_objects(PLAIN)
    (config,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gender-config-")
    ]
    assert config["data"]["GENDER_PUSHGATEWAY_URL"] == "http://gender-pushgateway:9091"
    service = find(objects, "Service", "gender-pushgateway")["spec"]
    assert [port["port"] for port in service["ports"]] == [9091]
    for name in ("gender-retrain", "gender-batch-predict"):
        template = find(objects, "CronJob", name)["spec"]["jobTemplate"]["spec"]["template"]
        (container,) = template["spec"]["containers"]
        env = [e for e in container["env"] if e["name"] == "GENDER_PUSHGATEWAY_URL"]
        assert env == [
            {
                "name": "GENDER_PUSHGATEWAY_URL",
                "valueFrom": {
                    "configMapKeyRef": {"name": config["metadata"]["name"], "key": "GENDER_PUSHGATEWAY_URL"}
                },
            }
        ], name


# --- The Prometheus Operator route ------------------------------------------------------------------

OPERATOR = "manifests/tests/cloud-with-monitoring-operator"
OPERATOR_DIR = MANIFESTS / "components" / "monitoring-operator"
GENERATOR = CHECKOUT_DIR / "scripts" / "prometheus_rule.py"
GENERATOR_TIMEOUT_S = 60
RELEASE = {"release": "kube-prometheus-stack"}
OPERATOR_GROUP = "monitoring.coreos.com/"


def test_the_prometheus_rule_is_generated_from_the_current_rules_file(tmp_path):
    out = tmp_path / "prometheusrule.yaml"
    generated = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=GENERATOR_TIMEOUT_S,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    committed = (OPERATOR_DIR / "prometheusrule.yaml").read_text()
    assert committed == out.read_text(), "prometheusrule.yaml is out of date: run `make prometheus-rule`"
    assert committed.startswith(f"# Generated from {RULES.relative_to(CHECKOUT_DIR)}")
    assert yaml.safe_load(committed)["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_both_routes_carry_the_rules_of_the_one_file():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert groups
    rule = find(rendered_objects(OPERATOR), "PrometheusRule", "gender-classifier")
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["labels"].items() >= RELEASE.items()
    (config,) = [
        o
        for o in rendered_objects(PLAIN)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gender-prometheus-config-")
    ]
    assert yaml.safe_load(config["data"]["rules.yaml"])["groups"] == groups


def test_the_operator_objects_validate_against_their_crds():
    objects = [o for o in rendered_objects(OPERATOR) if o["apiVersion"].startswith(OPERATOR_GROUP)]
    assert sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects) == [
        "PrometheusRule/gender-classifier",
        "ServiceMonitor/gender-api",
        "ServiceMonitor/gender-pushgateway",
    ]
    status, report = validate_crds(objects)
    assert [entry for entry in report if entry["errors"]] == []
    assert status == 0


def test_the_crd_validation_rejects_broken_operator_objects():
    objects = {o["kind"]: o for o in rendered_objects(OPERATOR) if o["apiVersion"].startswith(OPERATOR_GROUP)}
    monitor = copy.deepcopy(objects["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["honorLabels"] = "yes"
    rule = copy.deepcopy(objects["PrometheusRule"])
    del rule["spec"]["groups"][0]["name"]
    status, report = validate_crds([monitor, rule])
    assert status == 1
    monitor_errors, rule_errors = (entry["errors"] for entry in report)
    assert any("honorLabels" in error for error in monitor_errors), monitor_errors
    assert any("name" in error for error in rule_errors), rule_errors


def test_the_service_monitors_scrape_the_api_and_the_pushgateway_as_their_jobs():
    objects = rendered_objects(OPERATOR)
    for name in SCRAPED:
        monitor = find(objects, "ServiceMonitor", name)
        assert monitor["metadata"]["labels"].items() >= RELEASE.items(), name
        service = find(objects, "Service", name)
        # No jobLabel: the job label is the Service's name, the job the rules name.
        assert "jobLabel" not in monitor["spec"], name
        assert selects(monitor["spec"]["selector"], service["metadata"]["labels"]), name
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
        target = port["targetPort"]
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert [p["containerPort"] for p in container["ports"] if p["name"] == target] == [SCRAPED[name][1]]
        assert endpoint.get("honorLabels", False) is (name == "gender-pushgateway"), name


def test_the_dashboards_reach_grafanas_sidecar_as_they_are_in_the_repository():
    objects = rendered_objects(OPERATOR)
    files = sorted((OPERATOR_DIR / "dashboards").glob("*.json"))
    assert [f.name for f in files] == ["gender-api.json", "gender-model.json"]
    for path in files:
        config_map = find(objects, "ConfigMap", f"gender-dashboard-{path.stem.removeprefix('gender-')}")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"] == {path.name: path.read_text()}
        json.loads(path.read_text())


def test_the_operators_prometheus_scrapes_from_its_namespace_only():
    objects = rendered_objects(OPERATOR)
    pod = pods(objects)
    operator = {"namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}}
    assert connects(objects, operator, pod["api"], 5000)
    assert connects(objects, operator, pod["pushgateway"], 9091)
    assert not connects(objects, ELSEWHERE, pod["pushgateway"], 9091)
    assert not connects(objects, operator, pod["mlflow"], 5000)
    assert connects(objects, pod["batch"], pod["pushgateway"], 9091)
    assert not [o for o in objects if o["metadata"]["name"] == "gender-prometheus"]

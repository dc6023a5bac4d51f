"""Write airflow/dags/gender_jobs/ from the rendered manifests (`make airflow-jobs`).

The DAG gender_weekly reads its schedule and, in cluster mode, the Jobs it starts from there, so
that nothing of them is written twice: schedule.json holds the retrain CronJob's schedule and time
zone; retrain.json and batch_predict.json are the Jobs of the retrain and batch CronJobs' job
templates as `kubectl kustomize OVERLAY` renders them, as `kubectl create job --from=cronjob/...`
would make them; drift_report.json is the batch Job running jobs.drift_report instead. git-sync
carries the folder to the cluster's Airflow with the DAG. schedule.json names the overlay;
tests/airflow/test_dag.py renders that one again and fails when the committed files are out of date.

    python scripts/airflow_jobs.py [--overlay OVERLAY] [--out OUT]
"""

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
OVERLAY = Path("manifests/overlays/minikube")
OUT = Path("airflow/dags/gender_jobs")
SCHEDULE_CRONJOB = "gender-retrain"
# The DAG's steps: the CronJob whose job template each one runs, and its command when not the CronJob's.
STEPS = {
    "retrain": ("gender-retrain", None),
    "batch_predict": ("gender-batch-predict", None),
    "drift_report": ("gender-batch-predict", ["python", "-m", "jobs.drift_report"]),
}
RENDER_TIMEOUT_S = 60


class RenderError(Exception):
    """kubectl is missing, or kustomize refused the overlay: the message says which."""


def render(overlay: Path) -> list[dict]:
    """The objects `kubectl kustomize` renders for an overlay."""
    try:
        result = subprocess.run(
            ["kubectl", "kustomize", str(overlay)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise RenderError("kubectl is not on PATH (its built-in kustomize renders the manifests)") from None
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {overlay} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def cronjob(objects: list[dict], name: str, overlay: Path) -> dict:
    for obj in objects:
        if obj["kind"] == "CronJob" and obj["metadata"]["name"] == name:
            return obj
    raise RenderError(f"{overlay} renders no CronJob {name}")


def job(cron: dict, step: str, command: list[str] | None) -> dict:
    """The Job a CronJob's job template makes, named after the step; `command` replaces its one
    container's command."""
    template = copy.deepcopy(cron["spec"]["jobTemplate"])
    if command is not None:
        [container] = template["spec"]["template"]["spec"]["containers"]
        container["command"] = command
    name = f"gender-{step.replace('_', '-')}"
    metadata = {"name": name, "namespace": cron["metadata"]["namespace"], **template["metadata"]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]}


def airflow_jobs(objects: list[dict], overlay: Path) -> dict[str, dict]:
    """{file name: content} of the folder the DAG reads, from one overlay's rendered objects."""
    schedule = cronjob(objects, SCHEDULE_CRONJOB, overlay)
    files = {
        "schedule.json": {
            "generated_by": "scripts/airflow_jobs.py (make airflow-jobs)",
            "overlay": overlay.as_posix(),
            "schedule": schedule["spec"]["schedule"],
            "timezone": schedule["spec"]["timeZone"],
        }
    }
    for step, (name, command) in STEPS.items():
        files[f"{step}.json"] = job(cronjob(objects, name, overlay), step, command)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--overlay", type=Path, default=OVERLAY, help=f"kustomization to render (default {OVERLAY})"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"the folder to write (default {OUT})")
    args = parser.parse_args(argv)
    out = args.out if args.out.is_absolute() else CHECKOUT_DIR / args.out
    overlay = args.overlay if args.overlay.is_absolute() else CHECKOUT_DIR / args.overlay
    try:
        files = airflow_jobs(render(overlay), args.overlay)
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write airflow/dags/gender_schedule.json from the rendered manifests (`make airflow-schedule`).

The DAG gender_weekly runs on the retrain CronJob's schedule and time zone, which the manifests
define: this file copies them from `kubectl kustomize OVERLAY`, so that the schedule is written once.
git-sync carries it to the cluster's Airflow with the DAG, which reads it when Airflow parses the DAG
(the Jobs themselves come from the applied CronJobs when a task runs). The file names the overlay;
tests/airflow/test_dag.py renders that one again and fails when the committed file is out of date.

    python scripts/airflow_schedule.py [--overlay OVERLAY] [--out OUT]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
OVERLAY = Path("manifests/overlays/minikube")
OUT = Path("airflow/dags/gender_schedule.json")
SCHEDULE_CRONJOB = "gender-retrain"
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


def airflow_schedule(objects: list[dict], overlay: Path) -> dict:
    """The content of gender_schedule.json, from one overlay's rendered objects."""
    for obj in objects:
        if obj["kind"] == "CronJob" and obj["metadata"]["name"] == SCHEDULE_CRONJOB:
            return {
                "generated_by": "scripts/airflow_schedule.py (make airflow-schedule)",
                "overlay": overlay.as_posix(),
                "schedule": obj["spec"]["schedule"],
                "timezone": obj["spec"]["timeZone"],
            }
    raise RenderError(f"{overlay} renders no CronJob {SCHEDULE_CRONJOB}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--overlay", type=Path, default=OVERLAY, help=f"kustomization to render (default {OVERLAY})"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"the file to write (default {OUT})")
    args = parser.parse_args(argv)
    out = args.out if args.out.is_absolute() else CHECKOUT_DIR / args.out
    overlay = args.overlay if args.overlay.is_absolute() else CHECKOUT_DIR / args.overlay
    try:
        content = airflow_schedule(render(overlay), args.overlay)
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The steps of the DAG gender_weekly, in its two modes, and the settings that choose between them.

Local mode runs each step as a process of the local stack (`scripts/stack.sh retrain|batch|drift`,
the stack's environment and the project's .venv); cluster mode runs it as a Kubernetes Job made, at
run time, from the job template of the CronJob applied in the namespace, as
`kubectl create job --from=cronjob/NAME` makes it: the image, its tag and the ConfigMaps' names are
whatever the overlay in use last applied, never a copy of them.
"""

import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Literal

from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import V1Job, V1ObjectMeta, V1OwnerReference
from kubernetes.client.exceptions import ApiException
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DAGS_DIR = Path(__file__).resolve().parent
SCHEDULE_FILE = DAGS_DIR / "gender_schedule.json"
# The DAG's steps: the CronJob whose job template each one runs, and its command when not the CronJob's.
STEP_JOBS = {
    "retrain": ("gender-retrain", None),
    "batch_predict": ("gender-batch-predict", None),
    "drift_report": ("gender-batch-predict", ["python", "-m", "jobs.drift_report"]),
}
STEPS = tuple(STEP_JOBS)
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"  # what kubectl create job --from sets
# scripts/stack.sh's command for each step in local mode.
LOCAL_COMMANDS = {"retrain": "retrain", "batch_predict": "batch", "drift_report": "drift"}
# How many of a failed step's last output lines its error message repeats.
FAILURE_LINES = 5
# A pod waiting for one of these never starts by waiting longer: its Job is deleted at once.
HOPELESS_WAITING = ("InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError")
POD_POLL_S = 2.0
# How long a finished Job of the DAG stays in the namespace for `kubectl logs`, like the CronJobs' history.
FINISHED_JOB_TTL_S = 7 * 24 * 3600

log = logging.getLogger(__name__)


class AirflowSettings(BaseSettings):
    """The DAG's settings, from GENDER_AIRFLOW_* variables of the Airflow processes (docs/runtime.md)."""

    model_config = SettingsConfigDict(env_prefix="GENDER_AIRFLOW_", frozen=True, extra="ignore")

    # local: the steps are processes of the local stack (make up); cluster: Kubernetes Jobs.
    mode: Literal["local", "cluster"] = "local"
    # The checkout whose scripts/stack.sh and .venv the local mode runs: the one holding this DAG.
    checkout: Path = DAGS_DIR.parent.parent
    # Cluster mode: the namespace of the Jobs, how often to ask for a Job's status, and how long a
    # Job's pod may take to be scheduled and start before the task fails with the pod's reason.
    namespace: str = "gender-classifier"
    job_poll_interval_s: float = Field(default=5.0, gt=0)
    pod_start_timeout_s: float = Field(default=300.0, gt=0)

    @classmethod
    def from_env(cls) -> "AirflowSettings":
        """The settings, or a ValueError naming each bad variable (the DAG's import error)."""
        try:
            return cls()
        except ValidationError as error:
            problems = "; ".join(
                f"GENDER_AIRFLOW_{str(e['loc'][0]).upper()}={e['input']!r}: {e['msg']}"
                for e in error.errors()
            )
            raise ValueError(f"gender_weekly: invalid settings: {problems}") from None


def schedule() -> dict:
    """The retrain CronJob's schedule and time zone (gender_schedule.json, generated from the manifests)."""
    return json.loads(SCHEDULE_FILE.read_text())


def last_record(lines: list[str], event: str) -> dict | None:
    """The JSON record of a job's last log line of this event (the retrain's "gate", the drift
    report's "drift_report"), or None when it logged none."""
    for line in reversed(lines):
        if f'"event": "{event}"' in line:
            return json.loads(line[line.index("{") :])
    return None


def run_local(step: str, settings: AirflowSettings) -> list[str]:
    """Run a step through scripts/stack.sh, its output into the task log; returns the output lines.

    A non-zero exit fails the task with the exit code and the step's last lines.
    """
    command = [str(settings.checkout / "scripts" / "stack.sh"), LOCAL_COMMANDS[step]]
    log.info("running %s", " ".join(command))
    lines = []
    with subprocess.Popen(
        command, cwd=settings.checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            log.info("%s", lines[-1])
    if process.returncode != 0:
        last = "\n".join(lines[-FAILURE_LINES:])
        raise AirflowException(f"{step} exited with code {process.returncode}:\n{last}")
    return lines


class CronJobTemplateOperator(KubernetesJobOperator):
    """KubernetesJobOperator whose Job is made from the applied CronJob's job template when the task
    runs, and whose pods must start within a deadline: a pod that cannot (an image that is missing, an
    unschedulable pod) fails the task with the pod's reason and deletes the Job, instead of waiting
    for the Job's own deadline."""

    def __init__(self, *, step: str, settings: AirflowSettings, **kwargs) -> None:
        self.cronjob_name, self.step_command = STEP_JOBS[step]
        super().__init__(
            task_id=step,
            namespace=settings.namespace,
            parallelism=1,
            wait_until_job_complete=True,
            job_poll_interval=settings.job_poll_interval_s,
            get_logs=True,
            # The XCom sidecar and deferrable mode hang in the provider's current releases.
            do_xcom_push=False,
            deferrable=False,
            # The Job keeps its pod, and so its logs, until its TTL.
            on_finish_action="keep_pod",
            ttl_seconds_after_finished=FINISHED_JOB_TTL_S,
            startup_timeout_seconds=int(settings.pod_start_timeout_s),
            **kwargs,
        )

    def build_job_request_obj(self, context=None) -> V1Job:
        self.full_job_spec = self._job_from_cronjob()
        return super().build_job_request_obj(context)

    def _job_from_cronjob(self) -> V1Job:
        """The Job `kubectl create job --from=cronjob/...` makes of the CronJob, named after the step,
        with the step's command; the operator then adds its labels, TTL and name suffix."""
        cronjob = self.job_client.read_namespaced_cron_job(name=self.cronjob_name, namespace=self.namespace)
        template = cronjob.spec.job_template
        [container] = template.spec.template.spec.containers
        if self.step_command is not None:
            container.command = self.step_command
        # The operator's own container merges into the template's only under the same name.
        self.base_container_name = container.name
        owner = V1OwnerReference(
            api_version="batch/v1",
            kind="CronJob",
            name=cronjob.metadata.name,
            uid=cronjob.metadata.uid,
            controller=True,
        )
        template_meta = template.metadata or V1ObjectMeta()
        metadata = V1ObjectMeta(
            name=f"gender-{self.task_id.replace('_', '-')}",
            labels=template_meta.labels,
            annotations={MANUAL_ANNOTATION: "manual"} | (template_meta.annotations or {}),
            owner_references=[owner],
        )
        return V1Job(api_version="batch/v1", kind="Job", metadata=metadata, spec=template.spec)

    def execute(self, context):
        try:
            return super().execute(context)
        except ApiException as error:  # no rights, a namespace that does not exist, ...
            message = api_message(error)
            raise AirflowException(f"the Kubernetes API refused {self.task_id}: {message}") from None

    def get_pods(self, pod_request_obj, context, *, exclude_checked: bool = True):
        deadline = time.monotonic() + self.startup_timeout_seconds
        while True:
            try:
                pods = super().get_pods(pod_request_obj, context, exclude_checked=exclude_checked)
                break
            except AirflowException:  # the Job controller has not created its pod yet
                if time.monotonic() >= deadline:
                    self._give_up(f"no pod within {self.startup_timeout_seconds} s")
                time.sleep(POD_POLL_S)
        for pod in pods:
            self._await_start(pod.metadata.name, pod.metadata.namespace, deadline)
        return pods

    def _await_start(self, name: str, namespace: str, deadline: float) -> None:
        while True:
            pod = self.client.read_namespaced_pod(name=name, namespace=namespace)
            if pod.status.phase != "Pending":
                return
            reason = pending_reason(pod)
            if reason and reason.startswith(HOPELESS_WAITING):
                self._give_up(f"pod {name} cannot start: {reason}")
            if time.monotonic() >= deadline:
                self._give_up(
                    f"pod {name} did not start within {self.startup_timeout_seconds} s: "
                    f"{reason or 'still Pending'}"
                )
            time.sleep(POD_POLL_S)

    def _give_up(self, why: str) -> None:
        job = self.job.metadata
        self.job_client.delete_namespaced_job(
            name=job.name, namespace=job.namespace, propagation_policy="Foreground"
        )
        raise AirflowException(f"Kubernetes Job {job.name} deleted: {why}")


def api_message(error: ApiException) -> str:
    """The API server's own words: its Status message, else the HTTP status and reason."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


def pending_reason(pod) -> str | None:
    """Why a Pending pod has not started: a container's waiting reason, or its scheduling condition."""
    for status in (pod.status.container_statuses or []) + (pod.status.init_container_statuses or []):
        waiting = status.state and status.state.waiting
        if waiting and waiting.reason not in ("ContainerCreating", "PodInitializing"):
            return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
    for condition in pod.status.conditions or []:
        if condition.status == "False" and condition.reason:
            return f"{condition.reason}: {condition.message or ''}".rstrip(": ")
    return None

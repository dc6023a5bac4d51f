"""gender_weekly: the weekly retrain through its quality gate, then batch inference on the
unlabelled users with the champion, then the drift report of that batch.

On the retrain CronJob's schedule (gender_schedule.json, generated from the manifests), no
catchup, one run at a time. GENDER_AIRFLOW_MODE chooses where the steps run (gender_steps.py):
`local` (the default) as processes of the local stack, `cluster` as Kubernetes Jobs from the
applied CronJobs' job templates. The batch runs whatever the gate decided: a refused candidate is a
successful retrain, and the champion in use scores the users. The gate's decision is in the
retrain task's log, and in local mode its return value (XCom) too, like the drift report's.
"""

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task
from gender_steps import STEPS, AirflowSettings, CronJobTemplateOperator, last_record, run_local, schedule

settings = AirflowSettings.from_env()
timing = schedule()

with DAG(
    dag_id="gender_weekly",
    description="Weekly retrain with the quality gate, batch inference with the champion, drift report",
    schedule=CronTriggerTimetable(timing["schedule"], timezone=timing["timezone"]),
    start_date=pendulum.datetime(2025, 1, 1, tz=timing["timezone"]),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["gender-classifier", settings.mode],
    doc_md=__doc__,
) as dag:
    if settings.mode == "cluster":
        steps = [CronJobTemplateOperator(step=step, settings=settings) for step in STEPS]
    else:

        @task(task_id="retrain")
        def retrain() -> dict | None:
            """The retrain's gate record, as the XCom of this task."""
            return last_record(run_local("retrain", settings), "gate")

        @task(task_id="batch_predict")
        def batch_predict() -> None:
            run_local("batch_predict", settings)

        @task(task_id="drift_report")
        def drift_report() -> dict | None:
            """The drift report's record: the PSI per feature and the features above the alert."""
            return last_record(run_local("drift_report", settings), "drift_report")

        steps = [retrain(), batch_predict(), drift_report()]
    steps[0] >> steps[1] >> steps[2]

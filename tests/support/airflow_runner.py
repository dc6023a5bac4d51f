"""Run inside .tools/airflow (never imported by the tests): load the DAG gender_weekly as Airflow's
DAG processor does and print one JSON document on the last line of stdout.

    python airflow_runner.py describe   the import errors, tasks, order, schedule
    python airflow_runner.py test       dag.test(): the run's state, each task's state and XCom
"""

import json
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parent.parent.parent / "airflow" / "dags"
DAG_ID = "gender_weekly"


def load():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)


def describe() -> dict:
    bag = load()
    dag = bag.dags.get(DAG_ID)
    described = {"import_errors": bag.import_errors, "dag": None}
    if dag is not None:
        described["dag"] = {
            "timetable": {"expression": dag.timetable.expression, "timezone": str(dag.timetable.timezone)},
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tasks": {
                t.task_id: {"type": type(t).__name__, "downstream": sorted(t.downstream_task_ids)}
                for t in dag.tasks
            },
        }
    return described


def test() -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run = load().dags[DAG_ID].test()
    with create_session() as session:
        returned = session.scalars(
            select(XComModel).where(XComModel.run_id == run.run_id, XComModel.key == "return_value")
        ).all()
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in returned}
        states = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
    return {"state": run.state, "tasks": states, "xcoms": xcoms}


if __name__ == "__main__":
    command = {"describe": describe, "test": test}[sys.argv[1]]
    print(json.dumps(command(), default=str))

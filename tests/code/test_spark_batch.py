"""The Spark engine of batch inference (jobs.spark_batch) in PySpark's local mode, local[2], against
a real MLflow registry whose champion a tracked retrain set: the same predictions, summary and drift
as the single-node engine on the same table, and bad input refused with nothing left behind."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from model.exit_codes import ExitCode
from tests.fixtures.keys import new_key_pair
from tests.fixtures.models import job_env, run_job
from tests.fixtures.tracking import start_tracking_server

pytestmark = pytest.mark.slow

CHAMPION = "models:/gender-classifier@champion"


class Registry(NamedTuple):
    url: str
    work_dir: Path  # its champion's job directory: the same version published under models/


@pytest.fixture(scope="module")
def registry(tmp_path_factory, sample_data_dir) -> Iterator[Registry]:
    """An MLflow server of its own whose champion a tracked retrain on the sample data set."""
    work_dir = tmp_path_factory.mktemp("spark-registry")
    server = start_tracking_server(work_dir)
    try:
        env = job_env(work_dir, sample_data_dir, MLFLOW_TRACKING_URI=server.url, GENDER_TRACKING_WAIT_S="60")
        done = run_job("jobs.retrain", env)
        assert done.returncode == 0, done.stdout + done.stderr
        yield Registry(server.url, work_dir)
    finally:
        server.stop()


def spark_job(work: Path, data_dir: Path, users: Path, **extra: str):
    settings = {"GENDER_SPARK_MASTER": "local[2]", "GENDER_TRACKING_WAIT_S": "30"} | extra
    env = job_env(work, data_dir, **settings)
    return run_job("jobs.batch_predict", env, args=["--engine", "spark", "--input", str(users)])


def summary_of(stdout: str) -> dict:
    (line,) = [line for line in stdout.splitlines() if '"event": "batch_predict"' in line]
    return json.loads(line[line.index("{") :])


def as_parquet(csv: Path, out: Path, **replace: pa.Array) -> Path:
    table = pa_csv.read_csv(csv)
    for name, values in replace.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    pq.write_table(table, out)
    return out


def assert_refused(done, code: ExitCode, message: str, work: Path) -> None:
    """The job exited with `code`, said `message` without a traceback, and wrote no predictions."""
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    output_dir = work / "predictions"
    assert not output_dir.exists() or not [
        p for p in output_dir.iterdir() if p.name.startswith("predictions")
    ]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_both_engines_give_the_same_predictions_summary_and_drift(tmp_path, sample_data_dir, registry, kind):
    users = sample_data_dir / "users.csv"
    if kind == "parquet":  # Spark's readers take a path as a glob: these characters are literal
        users = as_parquet(users, tmp_path / "users [1] {a}.parquet")
    tracked = {"MLFLOW_TRACKING_URI": registry.url}
    spark = spark_job(tmp_path / "spark[1]", sample_data_dir, users, **tracked)
    assert spark.returncode == 0, spark.stdout + spark.stderr
    # The single-node engine, with the champion's version as the retrain published it.
    single = run_job(
        "jobs.batch_predict",
        job_env(registry.work_dir, sample_data_dir, GENDER_OUTPUT_DIR=str(tmp_path / "single")),
        args=["--input", str(users)],
    )
    assert single.returncode == 0, single.stdout + single.stderr

    by_spark, by_single = summary_of(spark.stdout), summary_of(single.stdout)
    written = pd.read_parquet(by_spark["output"]).sort_values("code", ignore_index=True)
    expected = pd.read_csv(by_single["output"]).sort_values("code", ignore_index=True)
    users_in_table = pq.read_metadata(users).num_rows if kind == "parquet" else len(pd.read_csv(users))
    assert len(written) == len(expected) == users_in_table
    assert written["code"].tolist() == expected["code"].tolist()
    assert written["predicted_gender"].tolist() == expected["predicted_gender"].tolist()
    assert written["model_version"].tolist() == expected["model_version"].tolist()
    assert (written["probability"] - expected["probability"]).abs().max() <= 1e-9

    for key in ("model_version", "rows", "female", "male", "reference_female_share"):
        assert by_spark[key] == by_single[key], key
    assert by_spark["mean_probability"] == pytest.approx(by_single["mean_probability"], abs=1e-12)
    assert by_spark["drift"].keys() == by_single["drift"].keys()
    for feature, psi in by_single["drift"].items():
        assert by_spark["drift"][feature] == pytest.approx(psi, abs=1e-12), feature
    spark_drift = json.loads(Path(by_spark["drift_file"]).read_text())
    single_drift = json.loads(Path(by_single["drift_file"]).read_text())
    assert spark_drift["users"] == single_drift["users"] == users_in_table
    assert spark_drift["features"].keys() == single_drift["features"].keys()
    for feature, shares in single_drift["features"].items():
        assert spark_drift["features"][feature] == pytest.approx(shares, abs=1e-12), feature

    out = tmp_path / "spark[1]" / "predictions"
    assert (out / "latest.parquet").resolve() == Path(by_spark["output"]).resolve()
    assert [p.name for p in out.iterdir() if p.name.endswith(".partial")] == []


def test_a_missing_file_is_named(tmp_path, sample_data_dir, registry):
    missing = tmp_path / "nowhere" / "users.parquet"
    done = spark_job(tmp_path, sample_data_dir, missing, MLFLOW_TRACKING_URI=registry.url)
    assert_refused(done, ExitCode.BAD_INPUT, f"{missing}: file not found", tmp_path)


def test_a_parquet_column_of_the_wrong_type_is_named(tmp_path, sample_data_dir, registry):
    users = pa_csv.read_csv(sample_data_dir / "users.csv")
    ages = pa.array([str(age) for age in users["age"].to_pylist()])
    table = as_parquet(sample_data_dir / "users.csv", tmp_path / "users.parquet", age=ages)
    done = spark_job(tmp_path, sample_data_dir, table, MLFLOW_TRACKING_URI=registry.url)
    assert_refused(
        done,
        ExitCode.BAD_INPUT,
        f"{table}, column 'age': column type string, expected an integer type",
        tmp_path,
    )


def test_a_refused_value_names_the_users_code_and_the_column(tmp_path, sample_data_dir, registry):
    frame = pd.read_csv(sample_data_dir / "users.csv")
    frame.loc[300, "age"] = 130
    users = tmp_path / "users.csv"
    frame.to_csv(users, index=False)
    done = spark_job(tmp_path, sample_data_dir, users, MLFLOW_TRACKING_URI=registry.url)
    code = frame.loc[300, "code"]
    message = f"{users}, column 'age': user code {code}: 130 is above the allowed 120"
    assert_refused(done, ExitCode.BAD_INPUT, message, tmp_path)


def test_a_row_of_the_wrong_width_is_refused(tmp_path, sample_data_dir, registry):
    users = tmp_path / "users.csv"
    lines = (sample_data_dir / "users.csv").read_text().splitlines()
    lines[10] += ",extra"
    users.write_text("\n".join(lines) + "\n")
    done = spark_job(tmp_path, sample_data_dir, users, MLFLOW_TRACKING_URI=registry.url)
    assert_refused(
        done, ExitCode.BAD_INPUT, f"{users}: a row whose number of fields is not the header's", tmp_path
    )


def test_an_unreachable_registry_is_named(tmp_path, sample_data_dir):
    done = spark_job(
        tmp_path,
        sample_data_dir,
        sample_data_dir / "users.csv",
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",
        GENDER_TRACKING_WAIT_S="0.5",
    )
    assert_refused(
        done, ExitCode.TRACKING, "MLflow tracking server http://127.0.0.1:9 is unreachable", tmp_path
    )


def test_a_registry_without_a_champion_is_named(tmp_path, sample_data_dir):
    (tmp_path / "empty-registry").mkdir()
    server = start_tracking_server(tmp_path / "empty-registry")
    try:
        done = spark_job(
            tmp_path, sample_data_dir, sample_data_dir / "users.csv", MLFLOW_TRACKING_URI=server.url
        )
    finally:
        server.stop()
    assert_refused(
        done,
        ExitCode.NO_MODEL,
        f"no champion in the registry at {server.url}: {CHAMPION} does not exist",
        tmp_path,
    )


def test_the_spark_engine_needs_a_registry_and_a_table(tmp_path, sample_data_dir):
    done = spark_job(tmp_path, sample_data_dir, sample_data_dir / "users.csv")
    assert done.returncode == ExitCode.USAGE
    assert f"the Spark engine scores {CHAMPION}: set MLFLOW_TRACKING_URI" in done.stdout
    no_table = run_job("jobs.batch_predict", job_env(tmp_path, sample_data_dir), args=["--engine", "spark"])
    assert no_table.returncode == ExitCode.USAGE
    assert "--engine spark scores the users table that --input names" in no_table.stderr


def test_a_champion_signed_by_an_untrusted_key_is_refused_before_unpickling(
    tmp_path, sample_data_dir, registry
):
    _, others = new_key_pair(tmp_path / "other-keys")
    done = spark_job(
        tmp_path,
        sample_data_dir,
        sample_data_dir / "users.csv",
        MLFLOW_TRACKING_URI=registry.url,
        GENDER_TRUSTED_KEYS_DIR=str(others),
    )
    assert_refused(done, ExitCode.NO_MODEL, f"{CHAMPION} (registry version 1): ", tmp_path)
    assert "signed by untrusted key" in done.stdout and "refusing to unpickle it" in done.stdout

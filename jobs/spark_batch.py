"""The Spark engine of batch inference: `python -m jobs.batch_predict --engine spark --input TABLE`.

It scores a users table (CSV or Parquet, users.csv's columns) with the registry's champion,
models:/gender-classifier@champion, through mlflow.pyfunc.spark_udf: the registered pyfunc, loaded
and verified in every executor, is the only model code. It writes predictions-<stamp>.parquet (a
directory of part files) into the output directory, first as predictions-<stamp>.partial, renamed
once every part is written, and points latest.parquet at it.

One pass over the table checks every value as model.data checks a file (a refusal names the user's
code and the column) and counts the users' drift bins with the champion's own feature path; the
second pass is the UDF. Spark runs where spark-submit says (the Spark Operator), or in this process
with GENDER_SPARK_MASTER (local[*] when neither says).
"""

import functools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow as pa
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pyspark import SparkFiles
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from jobs import tracking
from jobs.batch_predict import Scoring
from jobs.settings import SparkBatchSettings
from model import artifact, contract, drift
from model.data import (
    OPTIONAL_USERS_COLUMNS,
    USERS_COLUMNS,
    DataError,
    check_header,
    check_parquet_type,
    checked_values,
    factorized_columns,
    is_parquet,
)
from model.settings import SettingsError

APP_NAME = "gender-batch-predict"
CHAMPION_URI = f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION_ALIAS}"
LATEST = "latest.parquet"
MODEL_DIR_NAME = "champion"  # the downloaded champion's folder, shipped to every executor
RESULT_TYPE = "gender string, probability double"  # the pyfunc's Prediction
# One row per Arrow batch of the checking pass: a refusal, or the batch's drift bins (BinCounts.flat).
CHECK_SCHEMA = StructType(
    [
        StructField("code", StringType()),
        StructField("column", StringType()),
        StructField("reason", StringType()),
        StructField("counts", ArrayType(LongType())),
    ]
)
CHECK_ARROW_SCHEMA = to_arrow_schema(CHECK_SCHEMA)
CORRUPT_ROW = "_corrupt_record"  # where Spark's CSV reader puts a row of the wrong width
# Spark types of the contract's fields, as the pyfunc's UserInput takes them.
SPARK_TYPES = {str: "string", float: "double", int: "bigint"}
log = logging.getLogger("jobs.spark_batch")


def score(settings: SparkBatchSettings, users_file: Path, stamp: str) -> Scoring:
    if tracking.server_uri() is None:
        raise SettingsError(
            f"the Spark engine scores {CHAMPION_URI}: set MLFLOW_TRACKING_URI to the registry"
        )
    with tempfile.TemporaryDirectory(prefix="gender-champion-") as work:
        model_dir, registry_version = download_champion(Path(work))
        try:
            champion = load_champion(str(model_dir))
        except artifact.ArtifactError as error:
            raise artifact.ArtifactError(
                f"{CHAMPION_URI} (registry version {registry_version}): {error}"
            ) from None
        spark = session(settings)
        try:
            spark.sparkContext.addFile(str(model_dir), recursive=True)
            users = read_users(spark, users_file)
            bins = checked_bins(users, users_file)
            refuse_duplicate_codes(users, users_file)
            out = settings.output_dir / f"predictions-{stamp}.parquet"
            predictions = predict(spark, users, model_dir, champion.version)
            rows, female, mean_probability = write_atomically(spark, predictions, out)
        finally:
            spark.stop()
    artifact.replace_symlink(settings.output_dir / LATEST, out.name)
    log.info("%s", json.dumps({"event": "spark_scored", "registry_version": registry_version, "rows": rows}))
    return Scoring(
        model_version=champion.version,
        drift_reference=champion.metadata.get("drift_reference"),
        input=users_file,
        output=out,
        rows=rows,
        female=female,
        mean_probability=mean_probability,
        bins=bins,
    )


def literal(path: Path) -> str:
    """A path for Spark's readers, which take it as a Hadoop glob: its pattern characters escaped."""
    return re.sub(r"([\\{}\[\]*?])", r"\\\1", str(path))


def download_champion(work: Path) -> tuple[Path, str]:
    """The champion's registry version, downloaded into `work`; ArtifactError when there is none."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, tracking.CHAMPION_ALIAS)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise artifact.ArtifactError(
            f"no champion in the registry at {tracking.server_uri()}: {CHAMPION_URI} does not exist "
            "(a retrain that passes the quality gate sets it)"
        ) from None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a job's log, not a terminal
    path = mlflow.artifacts.download_artifacts(
        f"models:/{tracking.REGISTERED_MODEL}/{version.version}", dst_path=str(work / MODEL_DIR_NAME)
    )
    return Path(path), version.version


@functools.cache
def load_champion(model_dir: str) -> artifact.LoadedModel:
    """The verified model inside a downloaded pyfunc (its load_context checks the signature), once
    per process: the driver, and each executor's Python worker."""
    return mlflow.pyfunc.load_model(model_dir).unwrap_python_model().loaded


def session(settings: SparkBatchSettings) -> SparkSession:
    # The Python workers run this interpreter, whose environment holds the model's libraries.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # A job's log is read later, not watched: no progress bars in it.
    builder = SparkSession.builder.appName(APP_NAME).config("spark.ui.showConsoleProgress", "false")
    if settings.spark_master:
        builder = builder.master(settings.spark_master)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_users(spark: SparkSession, path: Path) -> DataFrame:
    """The users table with its header checked; a CSV's cells as text, as model.data reads them, and
    a row of the wrong width kept aside in CORRUPT_ROW (the check refuses it, quoting nothing)."""
    if not path.exists():
        raise DataError(path, "file not found")
    parquet = is_parquet(path)
    try:
        if parquet:
            users = spark.read.parquet(literal(path))
            header = users.columns
        else:
            header = spark.read.csv(literal(path), header=True).columns  # the first line only
            columns = [StructField(name, StringType()) for name in header]
            users = spark.read.csv(
                literal(path),
                header=True,
                escape='"',  # RFC 4180: a quote inside a quoted cell is doubled
                schema=StructType([*columns, StructField(CORRUPT_ROW, StringType())]),
                columnNameOfCorruptRecord=CORRUPT_ROW,
            )
    except AnalysisException as error:
        raise DataError(path, f"not a readable table ({error.getMessage()})") from None
    check_header(path, header, USERS_COLUMNS, OPTIONAL_USERS_COLUMNS)
    if parquet:
        arrow = to_arrow_schema(users.schema)
        for column in USERS_COLUMNS:
            if column.name in header:
                check_parquet_type(path, column, arrow.field(column.name).type)
    return users


def _check_batches(
    batches: Iterator[pa.RecordBatch], path: str, parquet: bool, model_file: str
) -> Iterator[pa.RecordBatch]:
    """mapInArrow: each batch's values checked as model.data checks a file, then its users' drift bins
    counted by the champion's feature path; a refusal ends the partition with the user's code."""
    predictor = load_champion(SparkFiles.get(model_file)).predictor
    for batch in batches:
        raw = {name: pa.chunked_array([batch.column(name)]) for name in batch.schema.names}
        if not parquet:
            if raw.pop(CORRUPT_ROW).null_count < batch.num_rows:
                yield check_result(reason="a row whose number of fields is not the header's")
                return
            # Spark reads an empty cell as null, model.data as empty text.
            raw = {name: column.fill_null("").to_pandas() for name, column in raw.items()}
        try:
            users = checked_values(path, raw, USERS_COLUMNS, parquet)
        except DataError as error:
            code = None if error.column == "code" else str(raw["code"][error.row - 1])
            yield check_result(code=code, column=error.column, reason=error.reason)
            return
        counts = drift.BinCounts().add(predictor.score(factorized_columns(users)).bins)
        yield check_result(counts=counts.flat())


def check_result(**fields) -> pa.RecordBatch:
    """One CHECK_SCHEMA row: a refusal (code, column, reason) or a batch's counts; the rest null."""
    row = dict.fromkeys(CHECK_SCHEMA.names) | fields
    return pa.RecordBatch.from_pylist([row], schema=CHECK_ARROW_SCHEMA)


def checked_bins(users: DataFrame, path: Path) -> drift.BinCounts:
    """Every value checked and the users counted per drift bin, in one pass; DataError names the
    first refused user's code and the column."""
    check = functools.partial(
        _check_batches, path=str(path), parquet=is_parquet(path), model_file=MODEL_DIR_NAME
    )
    results = users.mapInArrow(check, CHECK_SCHEMA).collect()
    refused = next((row for row in results if row.reason is not None), None)
    if refused is not None:
        who = f"user code {refused.code}: " if refused.code is not None else ""
        raise DataError(path, f"{who}{refused.reason}", column=refused.column)
    bins = drift.BinCounts()
    for row in results:
        bins.add_flat(row.counts)
    return bins


def refuse_duplicate_codes(users: DataFrame, path: Path) -> None:
    duplicate = users.groupBy("code").count().where("count > 1").first()
    if duplicate is not None:
        raise DataError(path, f"duplicate user code {duplicate['code']}", column="code")


def predict(spark: SparkSession, users: DataFrame, model_dir: Path, model_version: str) -> DataFrame:
    """Each user's code, predicted gender, its probability and the model version, by the pyfunc."""
    udf = mlflow.pyfunc.spark_udf(spark, str(model_dir), result_type=RESULT_TYPE, env_manager="local")
    fields = []
    for column in USERS_COLUMNS:
        if column.name in users.columns and column.name in contract.FIELD_BY_NAME:
            value = F.col(column.name).cast(SPARK_TYPES[contract.FIELD_BY_NAME[column.name].kind])
            if column.may_be_empty:  # a blank cell is a missing value, as model.data reads it
                value = F.when(F.trim(value) == "", None).otherwise(value)
            fields.append(value.alias(column.name))
    scored = users.select(F.col("code").cast("bigint").alias("code"), udf(F.struct(*fields)).alias("p"))
    return scored.select(
        "code",
        F.col("p.gender").alias("predicted_gender"),
        F.col("p.probability").alias("probability"),
        F.lit(model_version).alias("model_version"),
    )


def write_atomically(spark: SparkSession, predictions: DataFrame, out: Path) -> tuple[int, int, float]:
    """Write the predictions under a partial name, count them from what was written, then rename:
    readers never see part of a table. Returns the rows, the female ones and the mean probability."""
    partial = out.with_name(f"{out.stem}.partial")  # not hidden: Spark ignores names starting with a dot
    shutil.rmtree(partial, ignore_errors=True)  # what a run that was killed left
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        predictions.write.parquet(str(partial))
        written = spark.read.parquet(literal(partial)).agg(
            F.count("*").alias("rows"),
            F.sum((F.col("predicted_gender") == "female").cast("bigint")).alias("female"),
            F.mean("probability").alias("mean_probability"),
        )
        totals = written.first()
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return totals["rows"], totals["female"] or 0, totals["mean_probability"] or 0.0

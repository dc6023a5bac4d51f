"""Settings of the retrain and batch-inference jobs: one typed object from ``GENDER_*`` variables."""

from pathlib import Path

from pydantic import Field

from model.artifact import DEFAULT_KEEP
from model.data import dataset_paths
from model.settings import VAR_DIR, GenderSettings


class DataSettings(GenderSettings):
    """What the data loader reads: where the data set lives."""

    data_dir: Path = VAR_DIR / "data"


class JobSettings(DataSettings):
    """What both jobs read (see docs/runtime.md); each job adds its own below."""

    # Used when data_dir holds no users.csv: the jobs image bundles generated data here.
    sample_data_dir: Path = VAR_DIR / "sample-data"
    # How long to wait for the tracking server's /health before failing: on a fresh cluster MLflow
    # may still be pulling its image or migrating its database when the first job starts.
    tracking_wait_s: float = Field(default=600.0, ge=0)
    # Where the job pushes its metrics (jobs.pushgateway), e.g. http://gender-pushgateway:9091;
    # unset: nothing is pushed.
    pushgateway_url: str | None = None

    def input_paths(self) -> dict[str, Path | None]:
        """The data directory's CSVs, or the bundled sample's when the data directory has none."""
        source = self.data_dir if (self.data_dir / "users.csv").exists() else self.sample_data_dir
        return dataset_paths(source)


class RetrainSettings(JobSettings):
    # The bootstrap: train only when no model is published yet, so that running it again is a no-op.
    skip_if_published: bool = False
    gate_tolerance: float = Field(default=0.01, ge=0, le=1)
    gate_floor: float = Field(default=0.90, ge=0, le=1)
    keep_versions: int = Field(default=DEFAULT_KEEP, ge=1)
    # The Ed25519 private key (PEM, PKCS8) that signs every version published.
    signing_key_file: Path = VAR_DIR / "keys" / "signing-key.pem"
    # Local first use: make the key pair when signing_key_file does not exist, trusting its public
    # key in trusted_keys_dir. The manifests turn it off: there the key is a Secret.
    signing_key_create: bool = True


class BatchSettings(JobSettings):
    output_dir: Path = VAR_DIR / "predictions"


class SparkBatchSettings(BatchSettings):
    """The Spark engine's (`jobs.batch_predict --engine spark`)."""

    # Spark's master, e.g. local[2]; unset: the one spark-submit gives (the Spark Operator's
    # driver), else local[*].
    spark_master: str | None = None

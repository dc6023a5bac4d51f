"""Settings shared by every process: environment variables with the ``GENDER_`` prefix.

Defaults work on a fresh checkout with no variable set: everything lives under ``var/``,
which git ignores. In the cluster the manifests point the same settings at volumes.
"""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = CHECKOUT_DIR / "var"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class GenderSettings(BaseSettings):
    """Base of each process's settings object; subclasses add what that process reads."""

    model_config = SettingsConfigDict(env_prefix="GENDER_", frozen=True, extra="ignore")

    model_dir: Path = VAR_DIR / "models"
    log_level: str = "INFO"

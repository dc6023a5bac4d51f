"""Settings shared by every process: environment variables with the ``GENDER_`` prefix.

Defaults work on a fresh checkout with no variable set: everything lives under ``var/``,
which git ignores. In the cluster the manifests point the same settings at volumes.
"""

from pathlib import Path
from typing import Literal, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = CHECKOUT_DIR / "var"

ENV_PREFIX = "GENDER_"


class SettingsError(ValueError):
    """A setting that does not parse, or names something unusable (a key file, a Secret); the
    message names it."""


class GenderSettings(BaseSettings):
    """Base of each process's settings object; subclasses add what that process reads."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    model_dir: Path = VAR_DIR / "models"
    # The public keys whose signatures make a model version loadable (*.pem, one key each;
    # model.signing). Read at every load, so a changed ConfigMap applies without a restart.
    trusted_keys_dir: Path = VAR_DIR / "keys" / "trusted"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def from_env(cls) -> Self:
        """The settings, or a SettingsError naming each bad variable (no pydantic traceback)."""
        try:
            return cls()
        except ValidationError as error:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(e['loc'][0]).upper()}={e['input']!r}: {e['msg']}" for e in error.errors()
            )
            raise SettingsError(f"invalid settings: {problems}") from None

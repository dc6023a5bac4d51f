"""The prediction service's settings: one typed object read from ``GENDER_*`` environment variables."""

from pydantic import Field

from model.settings import GenderSettings

MIB = 1024 * 1024
# How long each read of a request's body and each write of an answer may wait for the client:
# service.worker sets it on every connection, service.app's 408 names it.
CLIENT_TIMEOUT_S = 10.0


class ServiceSettings(GenderSettings):
    """What the gunicorn config and the Flask app read (see docs/runtime.md)."""

    bind: str = "127.0.0.1:5000"
    workers: int = Field(default=2, ge=1)
    reload_interval_s: float = Field(default=5.0, gt=0)
    max_instances: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=MIB, ge=1024)

"""What every job entrypoint does around its work: settings, logging, and an exit code per failure.

Exit codes: 0 done, 1 another writer holds the model directory, 2 bad settings or input data, a
refused model, or a tracking server that fails. Known failures are one log line, never a traceback.
"""

import logging
import sys
from collections.abc import Callable

from mlflow.exceptions import MlflowException

from jobs import logs, tracking
from model import artifact
from model.data import DataError
from model.settings import GenderSettings, SettingsError

EXIT_OK, EXIT_BUSY, EXIT_FAILED = 0, 1, 2


def run(name: str, settings_class: type[GenderSettings], work: Callable[[GenderSettings], object]) -> int:
    try:
        settings = settings_class.from_env()
    except SettingsError as error:
        print(f"{name}: {error}", file=sys.stderr)  # logging is not configured yet: it needs the settings
        return EXIT_FAILED
    logs.configure(settings.log_level)
    log = logging.getLogger(name)
    try:
        work(settings)
    except artifact.WriterBusy as error:
        log.error("%s", error)
        return EXIT_BUSY
    except (DataError, artifact.ArtifactError, tracking.TrackingError) as error:
        log.error("%s", error)
        return EXIT_FAILED
    except MlflowException as error:
        log.error("MLflow tracking failed: %s", error)
        return EXIT_FAILED
    return EXIT_OK

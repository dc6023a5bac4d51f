"""What every job entrypoint does around its work: settings, logging, and an exit code per failure.

Exit codes are model.exit_codes.ExitCode. Known failures are one log line, never a traceback.
SIGTERM stops the work at once (a pod's PID 1 ignores signals it installs no handler for); the
writer lock and staged files are released on the way out.
"""

import logging
import os
import signal
import sys
from collections.abc import Callable

from mlflow.exceptions import MlflowException

from jobs import logs, tracking
from model import artifact
from model.data import DataError
from model.exit_codes import ExitCode
from model.settings import GenderSettings, SettingsError


class Terminated(BaseException):
    """SIGTERM arrived: the pod is being deleted or the Job stopped. A BaseException, like
    KeyboardInterrupt, so that no library's `except Exception` swallows it."""


def _terminate(signum, frame) -> None:
    raise Terminated


def run(name: str, settings_class: type[GenderSettings], work: Callable[[GenderSettings], object]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = settings_class.from_env()
    except SettingsError as error:
        print(f"{name}: {error}", file=sys.stderr)  # logging is not configured yet: it needs the settings
        return ExitCode.USAGE
    logs.configure(settings.log_level)
    log = logging.getLogger(name)
    try:
        work(settings)
    except artifact.WriterBusy as error:  # before ArtifactError, its base class
        log.error("%s", error)
        return ExitCode.WRITER_BUSY
    except artifact.ArtifactError as error:
        log.error("%s", error)
        return ExitCode.NO_MODEL
    except SettingsError as error:  # a setting that names something unusable, such as a missing key
        log.error("%s", error)
        return ExitCode.USAGE
    except DataError as error:
        log.error("%s", error)
        return ExitCode.BAD_INPUT
    except tracking.TrackingError as error:
        log.error("%s", error)
        return ExitCode.TRACKING
    except MlflowException as error:
        log.error("MLflow tracking server %s failed: %s", tracking.server_uri(), error)
        return ExitCode.TRACKING
    except PermissionError as error:
        log.error(
            "UID %d (GID %d) may not access %s (%s): give the job's user access to that volume",
            os.geteuid(),
            os.getegid(),
            error.filename,
            error.strerror,
        )
        return ExitCode.NO_ACCESS
    except Terminated:
        log.warning("stopped by SIGTERM before the work was done")
        return ExitCode.TERMINATED
    return ExitCode.OK

"""JSON lines on stdout: one object per record, the ``extra`` fields included."""

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
STDOUT_FD = 1


def json_line(created: float, level: str, logger: str, message: str, fields: Mapping[str, object]) -> bytes:
    """The one shape of every log line: time, level, logger, message, then the record's own fields."""
    entry = {
        "time": datetime.fromtimestamp(created, UTC),  # orjson writes RFC 3339 itself, no strftime per line
        "level": level,
        "logger": logger,
        "message": message,
        **fields,
    }
    return orjson.dumps(entry, default=str, option=orjson.OPT_UTC_Z)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname, record.name, record.getMessage(), fields).decode()


class AccessLog:
    """The line written for every request: the same JSON shape, one write(2) straight to stdout.

    It runs on every request, so it skips what logging does per record (a LogRecord, the handler
    lock, a formatter pass over every record attribute, a text-stream flush). The level set for the
    logger still decides whether lines are written. One write of a line under PIPE_BUF (4 KiB) is
    atomic, so the workers sharing stdout never interleave lines.
    """

    def __init__(self, name: str, fd: int = STDOUT_FD):
        self._logger = logging.getLogger(name)
        self._fd = fd

    def info(self, message: str, fields: Mapping[str, object]) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        line = json_line(time.time(), "INFO", self._logger.name, message, fields) + b"\n"
        # A closed or broken stdout must not fail the request; logging drops the line too. A plain
        # try rather than contextlib.suppress, which builds a context manager per request.
        try:  # noqa: SIM105
            os.write(self._fd, line)
        except OSError:
            pass


def logconfig_dict(level: str) -> dict:
    """A ``logging.config.dictConfig`` for gunicorn's and the app's loggers alike."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
        },
    }

"""gunicorn settings: ``gunicorn --config python:service.gunicorn_conf "service.app:create_app()"``.

Worker class: sync, one request at a time per process. Scoring is short and CPU-bound, so one
process per core is the most efficient shape, with no GIL contention. On SIGTERM the master closes
the listening socket at once and signals the workers; a sync worker finishes the request it is
serving and exits, so in-flight requests complete and shutdown is quick. Not gthread: it keeps
connections alive, but while draining it only wakes on socket events, so one idle keep-alive
connection holds every worker for the whole graceful_timeout. Sync workers do not keep connections
alive; a slow client holds a worker for at most ``timeout`` (bodies are small, and an ingress in
front buffers them).

gunicorn executes this module to read its settings; what changes the process (the metrics
directory, signal handlers) happens in the server hooks below.
"""

import os
import shutil
import signal
import tempfile

from gunicorn.glogging import Logger

from service import lifecycle
from service.logs import logconfig_dict as _logconfig_dict
from service.settings import ServiceSettings

_settings = ServiceSettings.from_env()  # a bad variable stops gunicorn with its name

PROMETHEUS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Kubernetes sends SIGTERM and kills after terminationGracePeriodSeconds (30 s by default): finish
# in-flight requests well within that.
GRACEFUL_TIMEOUT_S = 20
REQUEST_TIMEOUT_S = 30

bind = _settings.bind
workers = _settings.workers
worker_class = "sync"
graceful_timeout = GRACEFUL_TIMEOUT_S
timeout = REQUEST_TIMEOUT_S
# Never preload: the model watcher thread must start in each worker, not in the master.
preload_app = False
control_socket_disable = True  # no runtime control interface (it would write under $HOME)
logconfig_dict = _logconfig_dict(_settings.log_level)


class AppLogger(Logger):
    """gunicorn's logger without gunicorn's access log: the app writes one JSON line per request
    itself (service.instrument). With a logging config set, gunicorn would otherwise build the
    fields of its own access line for every request, only for logging to drop it."""

    access_log_enabled = False


logger_class = AppLogger


def on_starting(server) -> None:
    """Prometheus multiprocess mode: every worker writes its samples to files in one directory, read
    by /metrics in any worker. The master creates it before forking any worker, so each worker
    imports prometheus_client with the variable set. Fresh per server start (stale samples of a
    previous run would be summed in); under the system temp dir, an emptyDir in the cluster."""
    os.environ[PROMETHEUS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="gender-api-metrics-")


def post_worker_init(worker) -> None:
    """Report not ready as soon as this worker receives SIGTERM, then shut down as gunicorn does
    (in-flight requests still finish; only /readyz changes)."""
    graceful_exit = worker.handle_exit

    def drain_then_exit(signum, frame) -> None:
        lifecycle.draining.set()
        graceful_exit(signum, frame)

    signal.signal(signal.SIGTERM, drain_then_exit)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: do not interrupt active requests


def worker_exit(server, worker) -> None:
    """Count the users this worker scored since its last flush before it goes (the counters of a
    dead worker stay in the sums)."""
    from service import metrics  # the app imported it in this worker already

    metrics.scored.flush()


def child_exit(server, worker) -> None:
    # Imported here, not at the top: gunicorn runs this module before on_starting sets the variable,
    # prometheus_client picks its multiprocess mode when first imported, and every worker forked
    # later inherits the master's imports.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    shutil.rmtree(os.environ[PROMETHEUS_DIR_VARIABLE], ignore_errors=True)

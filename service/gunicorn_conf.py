"""gunicorn settings: ``gunicorn --config python:service.gunicorn_conf "service.app:create_app()"``.

Worker class: gevent (service.worker.DeadlineWorker), one process per core, each serving its
connections in greenlets. Scoring is short and CPU-bound, so a process per core is the efficient
shape; greenlets let a worker wait on slow clients without being held by them, and every client
has deadlines (service.worker). Connections are kept alive for ``keepalive`` seconds between
requests. On SIGTERM the master closes the listening socket at once and signals the workers; a
worker stops accepting, finishes the requests it is serving (answering them with
``Connection: close``), waits at most ``keepalive`` for idle connections, and exits, so in-flight
requests complete and shutdown takes seconds.

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
# A worker that does not report to the master for this long is killed and replaced: gevent's
# worker reports from its event loop, so this bounds one request's CPU time, not a slow client.
REQUEST_TIMEOUT_S = 30
# How long a kept-alive connection may stay idle, and how long a client has to send a request's
# line and headers. Below service.settings.CLIENT_TIMEOUT_S, so that idle connections close quietly.
KEEPALIVE_S = 5

bind = _settings.bind
workers = _settings.workers
worker_class = "service.worker.DeadlineWorker"
keepalive = KEEPALIVE_S
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

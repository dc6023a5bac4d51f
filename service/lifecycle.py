"""Process-wide shutdown flag: set by the worker's SIGTERM hook (gunicorn_conf), read by /readyz."""

import threading

draining = threading.Event()

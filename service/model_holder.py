"""The model in use, swapped atomically when a new verified version appears on the model volume.

Verified means signed by one of the trusted keys (model.signing), read again at each check: a
version refused under one set of keys is tried again once the set changes (a key being rotated in).

A request reads ``holder.model`` once and uses that immutable ``LoadedModel`` to the end, so a swap
(one reference assignment) never mixes two versions in one answer and never blocks a request.
"""

import gc
import logging
import threading
import time
from pathlib import Path

from model.artifact import ArtifactError, LoadedModel, UntrustedVersion, current_version, load
from model.signing import TrustedKeysError, read_trusted_keys
from service.metrics import MODEL_INFO, MODEL_LOADS, set_reference

log = logging.getLogger(__name__)

SMOKE_RECORD = {"name": "Jane Smith", "age": 30.0, "company": "4You"}


class ModelHolder:
    def __init__(self, model_dir: Path, trusted_keys_dir: Path, interval_s: float):
        self._model_dir = model_dir
        self._trusted_keys_dir = trusted_keys_dir
        self._interval_s = interval_s
        self._model: LoadedModel | None = None
        # A version id names immutable content: refused under a set of trusted keys (their ids),
        # it would be refused again under the same set.
        self._refused: dict[str, frozenset[str]] = {}
        # Why the latest check loaded nothing (None once a model loads): /readyz tells it.
        self._problem: str | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def problem(self) -> str | None:
        return self._problem

    def _report(self, problem: str) -> None:
        """Log a problem with the trusted keys once, not at every check while it lasts."""
        if problem != self._problem:
            log.error("no trusted keys to verify models with", extra={"reason": problem})
        self._problem = problem

    def refresh(self) -> None:
        """Load the published version if it is new, verified and not refused before."""
        with self._lock:
            try:
                version = current_version(self._model_dir)
            except (ArtifactError, OSError) as exc:
                log.warning("no usable model pointer", extra={"reason": str(exc)})
                return
            in_use = self._model
            if version is None or (in_use and in_use.version == version):
                return
            try:
                trusted = read_trusted_keys(self._trusted_keys_dir)
            except TrustedKeysError as exc:  # the reader's configuration, not the version's fault
                self._report(str(exc))
                return
            if self._refused.get(version) == frozenset(trusted):
                return
            try:
                loaded = load(self._model_dir, trusted, version)
                # A pickle from an incompatible code version may unpickle fine and fail on first use.
                loaded.predictor.predict([SMOKE_RECORD])
            except Exception as exc:
                # ArtifactError, a failing unpickle or smoke test: the same bytes would fail again.
                if current_version(self._model_dir) != version:
                    log.info("model version superseded while loading", extra={"model_version": version})
                    return
                self._refused[version] = frozenset(trusted)
                # Untrusted is not corrupt: what no trusted key signed is an attack until shown otherwise.
                outcome = "untrusted" if isinstance(exc, UntrustedVersion) else "refused"
                MODEL_LOADS.labels(outcome).inc()
                self._problem = f"model version {version} refused: {exc}"
                log.error(
                    "model version refused",
                    extra={
                        "model_version": version,
                        "serving": in_use and in_use.version,
                        "outcome": outcome,
                        "reason": str(exc),
                    },
                )
                return
            self._model = loaded
            self._problem = None
            # The model is a great many long-lived objects (name tables); a full garbage
            # collection walks them all, inside whichever request triggers it. Freezing
            # exempts them from collection; reference counting still frees a replaced model.
            gc.collect()
            gc.freeze()
            if in_use is not None:
                MODEL_INFO.labels(in_use.version).set(0)
            MODEL_INFO.labels(loaded.version).set(1)
            set_reference(loaded.metadata.get("drift_reference"))
            MODEL_LOADS.labels("loaded").inc()
            log.info("model loaded", extra={"model_version": loaded.version})

    def start_watching(self) -> threading.Thread:
        """Poll the model directory in a daemon thread of this (worker) process."""
        thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        thread.start()
        return thread

    def _watch(self) -> None:
        while True:
            time.sleep(self._interval_s)
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any surprise on the volume
                log.exception("model check failed")

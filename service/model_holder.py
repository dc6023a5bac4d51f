"""The model in use, swapped atomically when a new verified version appears on the model volume.

A request reads ``holder.model`` once and uses that immutable ``LoadedModel`` to the end, so a swap
(one reference assignment) never mixes two versions in one answer and never blocks a request.
"""

import gc
import logging
import threading
import time
from pathlib import Path

from model.artifact import ArtifactError, LoadedModel, current_version, load
from service.metrics import MODEL_INFO, MODEL_LOADS, set_reference

log = logging.getLogger(__name__)

SMOKE_RECORD = {"name": "Jane Smith", "age": 30.0, "company": "4You"}


class ModelHolder:
    def __init__(self, model_dir: Path, interval_s: float):
        self._model_dir = model_dir
        self._interval_s = interval_s
        self._model: LoadedModel | None = None
        # A version id names immutable content: once refused, it would be refused again.
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def refresh(self) -> None:
        """Load the published version if it is new, verified and not refused before."""
        with self._lock:
            try:
                version = current_version(self._model_dir)
            except (ArtifactError, OSError) as exc:
                log.warning("no usable model pointer", extra={"reason": str(exc)})
                return
            in_use = self._model
            if version is None or version in self._refused or (in_use and in_use.version == version):
                return
            try:
                loaded = load(self._model_dir, version)
                # A pickle from an incompatible code version may unpickle fine and fail on first use.
                loaded.predictor.predict([SMOKE_RECORD])
            except Exception as exc:
                # ArtifactError, a failing unpickle or smoke test: the same bytes would fail again.
                if current_version(self._model_dir) != version:
                    log.info("model version superseded while loading", extra={"model_version": version})
                    return
                self._refused.add(version)
                MODEL_LOADS.labels("refused").inc()
                log.error(
                    "model version refused",
                    extra={
                        "model_version": version,
                        "serving": in_use and in_use.version,
                        "reason": str(exc),
                    },
                )
                return
            self._model = loaded
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

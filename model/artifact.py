"""The model artifact on disk: versions/<id>/{model.pkl, model.json} and a `current` pointer.

Publishing writes a new version directory beside the others (same filesystem), fsyncs it,
renames it into place, then switches `current` (a relative symlink) with an atomic rename.
A reader sees the old model or the new one, never a partial one; a writer killed at any
point leaves `current` on the previous model. Loading checks model.pkl's sha256 against
model.json before unpickling, because unpickling runs code.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib

MODEL_FILE = "model.pkl"
METADATA_FILE = "model.json"
CURRENT = "current"
VERSIONS = "versions"
PUBLISH_LOCK = ".publish.lock"
PUBLISH_LOCK_TIMEOUT_S = 60.0
TEMP_PREFIX = ".incoming-"
DEFAULT_KEEP = 5
CHUNK_BYTES = 1 << 20


class ArtifactError(Exception):
    """A model that is missing, unreadable or fails verification; the message says which."""


@dataclass(frozen=True)
class LoadedModel:
    version: str
    metadata: dict
    predictor: object  # model.pipeline.GenderPredictor


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def new_version_id(now: datetime | None = None) -> str:
    """Sortable by time to the microsecond, as pruning needs: 20261122T061500123456Z-1a2b3c."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{os.urandom(3).hex()}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


@contextlib.contextmanager
def exclusive_lock(model_dir: Path, lock_name: str, timeout_s: float = 0.0):
    """An advisory lock file in the model directory; ArtifactError when held past the timeout."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / lock_name, "w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ArtifactError(f"{model_dir / lock_name} is held by another writer") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish(
    predictor, metadata: dict, model_dir: Path, keep: int = DEFAULT_KEEP, extras: tuple[Path, ...] = ()
) -> str:
    """Publish a new version (with `extras` such as reports copied beside the model); returns its id."""
    model_dir = Path(model_dir)
    with exclusive_lock(model_dir, PUBLISH_LOCK, PUBLISH_LOCK_TIMEOUT_S):
        return _publish_locked(predictor, metadata, model_dir, keep, extras)


def _publish_locked(predictor, metadata: dict, model_dir: Path, keep: int, extras: tuple[Path, ...]) -> str:
    versions = model_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    version = new_version_id()
    incoming = versions / f"{TEMP_PREFIX}{version}"
    incoming.mkdir()
    joblib.dump(predictor, incoming / MODEL_FILE)
    for extra in extras:
        shutil.copyfile(extra, incoming / Path(extra).name)
    for written in incoming.iterdir():
        with open(written, "rb+") as file:
            os.fsync(file.fileno())
    metadata = {
        **metadata,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": sha256_file(incoming / MODEL_FILE),
    }
    _write_durably(incoming / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True).encode())
    _fsync_dir(incoming)
    os.rename(incoming, versions / version)
    _fsync_dir(versions)
    pointer = model_dir / f"{TEMP_PREFIX}{CURRENT}-{version}"
    os.symlink(f"{VERSIONS}/{version}", pointer)
    os.replace(pointer, model_dir / CURRENT)
    _fsync_dir(model_dir)
    prune(model_dir, keep)
    return version


def prune(model_dir: Path, keep: int) -> None:
    """Keep the newest `keep` versions (and always the current one); drop leftovers of killed writers.

    Runs under the publish lock, so any temporary entry left here belongs to a dead writer.
    """
    versions = model_dir / VERSIONS
    current = current_version(model_dir)
    for leftover in [*versions.glob(f"{TEMP_PREFIX}*"), *model_dir.glob(f"{TEMP_PREFIX}*")]:
        if leftover.is_symlink() or leftover.is_file():
            leftover.unlink()
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    published = sorted(p.name for p in versions.iterdir() if not p.name.startswith("."))
    for old in published[: max(len(published) - keep, 0)]:
        if old != current:
            shutil.rmtree(versions / old, ignore_errors=True)


def current_version(model_dir: Path) -> str | None:
    try:
        target = os.readlink(Path(model_dir) / CURRENT)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ArtifactError(f"{model_dir}/{CURRENT} is not a version pointer ({error.strerror})") from None
    parent, _, version = target.partition("/")
    if parent != VERSIONS or not version or "/" in version:
        raise ArtifactError(f"{model_dir}/{CURRENT} points outside {VERSIONS}/: {target!r}")
    return version


def read_metadata(model_dir: Path, version: str) -> dict:
    path = Path(model_dir) / VERSIONS / version / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"model version {version}: {METADATA_FILE} is missing") from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"model version {version}: {METADATA_FILE} is unreadable ({error})") from None


def load(model_dir: Path, version: str | None = None) -> LoadedModel:
    """Load a version (default: current), refusing it unless model.pkl matches its recorded sha256."""
    model_dir = Path(model_dir)
    version = version or current_version(model_dir)
    if version is None:
        raise ArtifactError(f"no model has been published in {model_dir} yet")
    metadata = read_metadata(model_dir, version)
    model_path = model_dir / VERSIONS / version / MODEL_FILE
    try:
        actual = sha256_file(model_path)
    except OSError as error:
        raise ArtifactError(f"model version {version}: cannot read {MODEL_FILE} ({error.strerror})") from None
    if actual != metadata.get("sha256"):
        raise ArtifactError(
            f"model version {version}: {MODEL_FILE} sha256 {actual[:12]}… does not match "
            f"{METADATA_FILE} ({str(metadata.get('sha256'))[:12]}…); refusing to unpickle it"
        )
    return LoadedModel(version=version, metadata=metadata, predictor=joblib.load(model_path))

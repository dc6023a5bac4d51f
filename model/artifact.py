"""The model artifact on disk: versions/<id>/{model.pkl, model.json, model.sig, model_card.md} and a
`current` pointer.

Publishing writes a new version directory beside the others (same filesystem), fsyncs it,
renames it into place, then switches `current` (a relative symlink) with an atomic rename.
A reader sees the old model or the new one, never a partial one; a writer killed at any
point leaves `current` on the previous model. Loading checks, before unpickling, because
unpickling runs code: model.sig (model.signing: model.json signed by a trusted key), model.json's
format, and model.pkl's and model_card.md's sha256 against the ones model.json records (a version
published before model cards has none, and loads without a card).
"""

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib

from model import signing

MODEL_FILE = "model.pkl"
METADATA_FILE = "model.json"
CARD_FILE = "model_card.md"
CURRENT = "current"
VERSIONS = "versions"
WRITER_LOCK = ".writer.lock"
PUBLISH_WAIT_S = 60.0
TEMP_PREFIX = ".incoming-"
DEFAULT_KEEP = 5
CHUNK_BYTES = 1 << 20
# What model.pkl holds and how: the classes and attributes this code unpickles and calls, and the
# file's encoding. Raised whenever they change in a way an older model cannot follow; 2: text
# normalization, titles and the multilingual first-name prior, written by joblib; 3: the same
# objects as a plain pickle, which loads several times faster than joblib's reader. A model.json
# without the field is of format 1.
FORMAT = 3
# The formats this code reads, and how: format 2 holds the objects format 3 holds.
UNPICKLERS = {2: lambda data: joblib.load(io.BytesIO(data)), 3: pickle.loads}


class ArtifactError(Exception):
    """A model that is missing, unreadable or fails verification; the message says which."""


class IncompatibleFormat(ArtifactError):
    """A version written for another format of model.pkl than the one this code reads."""


class UntrustedVersion(ArtifactError):
    """A version that is unsigned, signed by a key that is not trusted, or whose signature is wrong."""


class WriterBusy(ArtifactError):
    """Another process holds the model directory's writer lock."""


@dataclass(frozen=True)
class StagedVersion:
    """A complete version directory not yet visible to readers (see stage/commit)."""

    model_dir: Path
    path: Path
    version: str
    metadata: dict
    card: str


@dataclass(frozen=True)
class LoadedModel:
    version: str
    metadata: dict
    predictor: object  # model.pipeline.GenderPredictor
    card: str | None  # model_card.md; None for a version published before model cards


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
def writer_lock(model_dir: Path, timeout_s: float = 0.0):
    """Held by whoever writes the model directory, so that two writers never publish together."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / WRITER_LOCK, "w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriterBusy(
                        f"{model_dir} is being written by another process (lock {WRITER_LOCK})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish(
    predictor,
    metadata: dict,
    model_dir: Path,
    key: signing.SigningKey,
    keep: int = DEFAULT_KEEP,
    extras: tuple[Path, ...] = (),
) -> str:
    """Stage and commit a new version signed with `key` under the writer lock; returns its id."""
    with writer_lock(model_dir, PUBLISH_WAIT_S):
        return commit(stage(predictor, metadata, model_dir, key, extras), keep)


def stage(
    predictor, metadata: dict, model_dir: Path, key: signing.SigningKey, extras: tuple[Path, ...] = ()
) -> StagedVersion:
    """Write a complete, fsynced, signed version directory beside the published ones, invisible to
    readers.

    `extras` (reports such as confusion matrices) are copied in beside the model, and the model card
    (model.card) rendered from the complete metadata. The caller holds writer_lock and then commits
    or discards it.
    """
    # Imported here: only the jobs publish, and the card's YAML library is not in the API image.
    from model import card

    model_dir = Path(model_dir)
    versions = model_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    version = new_version_id()
    incoming = versions / f"{TEMP_PREFIX}{version}"
    incoming.mkdir()
    (incoming / MODEL_FILE).write_bytes(pickle.dumps(predictor, protocol=pickle.HIGHEST_PROTOCOL))
    for extra in extras:
        shutil.copyfile(extra, incoming / Path(extra).name)
    for written in incoming.iterdir():
        with open(written, "rb+") as file:
            os.fsync(file.fileno())
    metadata = {
        **metadata,
        "format": FORMAT,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": sha256_file(incoming / MODEL_FILE),
    }
    card_text = card.render(metadata)
    card_bytes = card_text.encode()
    _write_durably(incoming / CARD_FILE, card_bytes)
    # In model.json, so the signature covers the card too.
    metadata["model_card_sha256"] = hashlib.sha256(card_bytes).hexdigest()
    metadata_bytes = json.dumps(metadata, indent=2, sort_keys=True).encode()
    _write_durably(incoming / METADATA_FILE, metadata_bytes)
    _write_durably(
        incoming / signing.SIGNATURE_FILE,
        signing.signature_document(key, metadata["sha256"], metadata_bytes),
    )
    _fsync_dir(incoming)
    return StagedVersion(model_dir, incoming, version, metadata, card_text)


def commit(staged: StagedVersion, keep: int = DEFAULT_KEEP) -> str:
    """Rename the staged directory into place, then switch `current` to it atomically."""
    versions = staged.model_dir / VERSIONS
    os.rename(staged.path, versions / staged.version)
    _fsync_dir(versions)
    replace_symlink(staged.model_dir / CURRENT, f"{VERSIONS}/{staged.version}")
    _fsync_dir(staged.model_dir)
    prune(staged.model_dir, keep)
    return staged.version


def replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` (relative) in one atomic rename: readers see the old or the new target."""
    temporary = link.with_name(f"{TEMP_PREFIX}{link.name}-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, link)


def discard(staged: StagedVersion) -> None:
    shutil.rmtree(staged.path, ignore_errors=True)


def prune(model_dir: Path, keep: int) -> None:
    """Keep the newest `keep` versions (and always the current one); drop leftovers of killed writers.

    Runs under the writer lock, so any temporary entry left here belongs to a dead writer.
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


def _read(version_dir: Path, name: str) -> bytes:
    try:
        return (Path(version_dir) / name).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{version_dir}: {name} is missing") from None
    except OSError as error:
        raise ArtifactError(f"{version_dir}: cannot read {name} ({error.strerror})") from None


def _parse_metadata(version_dir: Path, data: bytes) -> dict:
    try:
        metadata = json.loads(data)
    except ValueError as error:
        raise ArtifactError(f"{version_dir}: {METADATA_FILE} is unreadable ({error})") from None
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{version_dir}: {METADATA_FILE} is not a JSON object")
    return metadata


def check_format(version_dir: Path, metadata: dict) -> None:
    """Refuse a version whose model.pkl this code cannot read: train a new one with this release."""
    written = metadata.get("format", 1)
    if written not in UNPICKLERS:
        readable = " and ".join(str(f) for f in UNPICKLERS)
        raise IncompatibleFormat(
            f"{version_dir}: model format {written}, and this release reads formats {readable}; "
            "retrain with this release (the retrain CronJob, or make train)"
        )


def _matching(version_dir: Path, name: str, recorded: str, refusal: str) -> bytes:
    """The bytes of a version's file whose sha256 is the one model.json records; `refusal` ends the
    message when they differ."""
    data = _read(version_dir, name)
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise ArtifactError(
            f"{version_dir}: {name} sha256 {actual[:12]}… does not match {METADATA_FILE} "
            f"({recorded[:12]}…); {refusal}"
        )
    return data


def _card(version_dir: Path, metadata: dict) -> str | None:
    """model_card.md's text when model.json records its sha256 (None when it records none: a version
    published before model cards); refused like model.pkl when the file does not match."""
    recorded = metadata.get("model_card_sha256")
    if recorded is None:
        return None
    # As stage wrote it: the sha256 matches.
    return _matching(version_dir, CARD_FILE, str(recorded), "refusing the version").decode()


def verify_version_dir(version_dir: Path, trusted: signing.TrustedKeys) -> tuple[dict, bytes, str | None]:
    """model.json, model.pkl's bytes and the model card of a version that passes every check, in
    this order: signed by a trusted key (UntrustedVersion), of this code's format, model.pkl and
    model_card.md matching the sha256 that model.json records (a corrupt file, not a forged one: the
    signature covers model.json)."""
    version_dir = Path(version_dir)
    metadata_bytes = _read(version_dir, METADATA_FILE)
    metadata = _parse_metadata(version_dir, metadata_bytes)
    recorded = str(metadata.get("sha256"))
    try:
        signing.verify(version_dir, trusted, recorded, metadata_bytes)
    except signing.BadSignature as error:
        raise UntrustedVersion(str(error)) from None
    check_format(version_dir, metadata)
    # Read once: the bytes that are checked are the bytes that are unpickled.
    model_bytes = _matching(version_dir, MODEL_FILE, recorded, "refusing to unpickle it")
    return metadata, model_bytes, _card(version_dir, metadata)


def load_version_dir(version_dir: Path, trusted: signing.TrustedKeys) -> LoadedModel:
    """Load one version directory once verify_version_dir accepts it."""
    metadata, model_bytes, card = verify_version_dir(version_dir, trusted)
    return LoadedModel(
        version=metadata.get("version", Path(version_dir).name),
        metadata=metadata,
        predictor=UNPICKLERS[metadata.get("format", 1)](model_bytes),
        card=card,
    )


def load(model_dir: Path, trusted: signing.TrustedKeys, version: str | None = None) -> LoadedModel:
    """Load a published version (default: the current one), verified before unpickling."""
    model_dir = Path(model_dir)
    version = version or current_version(model_dir)
    if version is None:
        raise ArtifactError(f"no model has been published in {model_dir} yet")
    return load_version_dir(model_dir / VERSIONS / version, trusted)

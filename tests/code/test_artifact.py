"""The model artifact: atomic publishing, pruning, the model card, and refusal of anything that fails
its checksum or its format (signatures: test_signing.py)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import joblib
import pytest

from model import artifact
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import session_key, session_trusted
from tests.fixtures.service import publish_copy, publish_copy_without_card, unpublished
from tests.support.forgery import sign
from tests.support.polling import wait_until

# A writer that republishes the given model forever, for the kill test.
PUBLISH_FOREVER = """
import sys
from model import artifact
from tests.fixtures.keys import session_key, session_trusted
from tests.fixtures.service import unpublished
loaded = artifact.load(sys.argv[1], session_trusted())
metadata = unpublished(loaded.metadata) | {"source": "kill-test"}
key = session_key()
while True:
    artifact.publish(loaded.predictor, metadata, sys.argv[2], key, keep=3)
"""
WRITER_START_TIMEOUT_S = 30


@pytest.fixture
def model_dir(tmp_path, sample_model_dir):
    target = tmp_path / "models"
    publish_copy(sample_model_dir, target, source="test")
    return target


def test_publish_layout_and_metadata(model_dir):
    version = artifact.current_version(model_dir)
    assert os.readlink(model_dir / "current") == f"versions/{version}"
    metadata = json.loads((model_dir / "versions" / version / "model.json").read_text())
    assert metadata["version"] == version and metadata["source"] == "test"
    assert metadata["format"] == artifact.FORMAT
    assert metadata["sha256"] == artifact.sha256_file(model_dir / "versions" / version / "model.pkl")
    assert artifact.load(model_dir, session_trusted()).version == version


def test_every_version_carries_its_card_and_model_json_its_sha256(model_dir):
    version_dir = model_dir / "versions" / artifact.current_version(model_dir)
    metadata = json.loads((version_dir / "model.json").read_text())
    card = (version_dir / "model_card.md").read_text()
    assert metadata["model_card_sha256"] == artifact.sha256_file(version_dir / "model_card.md")
    assert card.startswith("---\n") and f"# gender-classifier {metadata['version']}" in card
    assert artifact.load(model_dir, session_trusted()).card == card


def claim_a_better_accuracy(card: Path) -> None:
    card.write_text(card.read_text() + "\nGrouped accuracy: 1.000\n")


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (
            claim_a_better_accuracy,
            r"model_card\.md sha256 .* does not match model\.json .*; refusing the version",
        ),
        (Path.unlink, r"model_card\.md is missing"),
    ],
    ids=["tampered", "missing"],
)
def test_a_tampered_or_missing_card_refuses_the_version(model_dir, spoil, reason):
    version = artifact.current_version(model_dir)
    spoil(model_dir / "versions" / version / "model_card.md")
    with pytest.raises(artifact.ArtifactError, match=rf"versions/{version}: {reason}"):
        artifact.load(model_dir, session_trusted())


# Run as the API runs: loading and serving a version with its card must not need PyYAML, which the
# API image lacks (only publishing renders a card).
LOAD_WITHOUT_YAML = """
import os, sys
import service.app
from model import artifact, signing
loaded = artifact.load(sys.argv[1], signing.read_trusted_keys(os.environ["GENDER_TRUSTED_KEYS_DIR"]))
assert loaded.card and "yaml" not in sys.modules, sorted(m for m in sys.modules if "yaml" in m)
"""


def test_loading_a_version_and_its_card_needs_no_yaml(model_dir):
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_YAML, str(model_dir)],
        cwd=CHECKOUT_DIR,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_a_version_published_before_model_cards_loads_without_one(tmp_path, sample_model_dir):
    model_dir = tmp_path / "models"
    version = publish_copy_without_card(sample_model_dir, model_dir)
    loaded = artifact.load(model_dir, session_trusted())
    assert (loaded.version, loaded.card) == (version, None)
    assert loaded.predictor.predict([{"name": "Mary Jones"}])[0].gender == "female"


def test_keeps_the_newest_versions(model_dir):
    loaded = artifact.load(model_dir, session_trusted())
    metadata = unpublished(loaded.metadata)
    published = [
        artifact.publish(loaded.predictor, metadata, model_dir, session_key(), keep=2) for _ in range(4)
    ]
    assert sorted(p.name for p in (model_dir / "versions").iterdir()) == sorted(published[-2:])
    assert artifact.current_version(model_dir) == published[-1]


def test_tampered_model_is_refused_before_unpickling(model_dir):
    version = artifact.current_version(model_dir)
    with open(model_dir / "versions" / version / "model.pkl", "ab") as pickle_file:
        pickle_file.write(b"tampered")
    with pytest.raises(
        artifact.ArtifactError, match=rf"versions/{version}: model.pkl sha256 .* does not match"
    ):
        artifact.load(model_dir, session_trusted())


@pytest.mark.parametrize("written", [{}, {"format": 1}, {"format": artifact.FORMAT + 1}])
def test_a_model_of_another_format_is_refused_before_unpickling(model_dir, written):
    version = artifact.current_version(model_dir)
    version_dir = model_dir / "versions" / version
    # Not a pickle at all, with a matching checksum: only the format check stands in the way.
    (version_dir / "model.pkl").write_bytes(b"not a pickle")
    metadata = json.loads((version_dir / "model.json").read_text())
    metadata = {key: value for key, value in metadata.items() if key != "format"} | written
    metadata["sha256"] = artifact.sha256_file(version_dir / "model.pkl")
    (version_dir / "model.json").write_text(json.dumps(metadata))
    sign(version_dir, session_key())  # as a release that signed, but wrote another format
    expected = rf"model format {written.get('format', 1)}, and this release reads formats 2 and 3"
    with pytest.raises(artifact.IncompatibleFormat, match=expected):
        artifact.load(model_dir, session_trusted())


def test_a_version_of_the_previous_format_still_loads(model_dir):
    # Format 2 wrote model.pkl with joblib; a served model of it keeps serving across the upgrade.
    current = artifact.load(model_dir, session_trusted())
    version_dir = model_dir / "versions" / current.version
    joblib.dump(current.predictor, version_dir / "model.pkl")
    metadata = json.loads((version_dir / "model.json").read_text())
    metadata |= {"format": 2, "sha256": artifact.sha256_file(version_dir / "model.pkl")}
    (version_dir / "model.json").write_text(json.dumps(metadata))
    sign(version_dir, session_key())
    assert (version_dir / "model.pkl").read_bytes() != pickle.dumps(
        current.predictor, pickle.HIGHEST_PROTOCOL
    )
    users = [{"name": "Mary Stone", "age": 30}, {"name": "John Smith", "country": "US"}, {}]
    assert artifact.load(model_dir, session_trusted()).predictor.predict(users) == current.predictor.predict(
        users
    )


def test_missing_model_and_metadata_are_refused(tmp_path, model_dir):
    with pytest.raises(artifact.ArtifactError, match="no model has been published"):
        artifact.load(tmp_path / "empty", session_trusted())
    version = artifact.current_version(model_dir)
    (model_dir / "versions" / version / "model.json").write_text("{not json")
    with pytest.raises(artifact.ArtifactError, match=r"model\.json is unreadable"):
        artifact.load(model_dir, session_trusted())


def test_pointer_outside_versions_is_refused(tmp_path):
    tmp_path.joinpath("current").symlink_to("/etc")
    with pytest.raises(artifact.ArtifactError, match="points outside versions/"):
        artifact.current_version(tmp_path)


def test_lock_excludes_a_second_writer(model_dir):
    with (
        artifact.writer_lock(model_dir),
        pytest.raises(artifact.ArtifactError, match="being written by another process"),
        artifact.writer_lock(model_dir, timeout_s=0.3),
    ):
        pass


def wait_for_first_publish(writer: subprocess.Popen, model_dir: Path) -> None:
    """Wait until the writer has made a new version current: past its start-up, inside its publish loop."""
    before = artifact.current_version(model_dir)

    def published() -> bool:
        if writer.poll() is not None:
            raise AssertionError(f"the writer exited with {writer.returncode} before publishing")
        return artifact.current_version(model_dir) != before

    wait_until(published, WRITER_START_TIMEOUT_S, 0.01, "the writer published nothing")


def test_killed_writer_never_exposes_a_partial_model(model_dir):
    """SIGKILL a writer at random moments while a reader keeps loading `current`."""
    errors: list[str] = []
    loads = 0
    stop = threading.Event()
    trusted = session_trusted()

    def reader():
        nonlocal loads
        while not stop.is_set():
            try:
                artifact.load(model_dir, trusted)
                loads += 1
            except artifact.ArtifactError as error:
                errors.append(str(error))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for attempt in range(8):
            writer = subprocess.Popen(
                [sys.executable, "-c", PUBLISH_FOREVER, str(model_dir), str(model_dir)], cwd=CHECKOUT_DIR
            )
            wait_for_first_publish(writer, model_dir)
            time.sleep(0.13 * attempt)  # then a different point in the publish cycle each time
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            assert artifact.load(model_dir, trusted).metadata["sha256"]
    finally:
        stop.set()
        thread.join()
    # Versions pruned between a reader's readlink and its open are the only tolerated misses.
    damaged = ("does not match", "unreadable", "bad signature")
    assert not [e for e in errors if any(sign in e for sign in damaged)], errors
    assert loads > 0
    # The next publish clears whatever the killed writers left behind.
    loaded = artifact.load(model_dir, trusted)
    artifact.publish(loaded.predictor, unpublished(loaded.metadata), model_dir, session_key(), keep=3)
    leftovers = [
        p.name
        for p in [*model_dir.iterdir(), *(model_dir / "versions").iterdir()]
        if p.name.startswith(".incoming")
    ]
    assert leftovers == []

"""Signed versions: only what a trusted key signed is unpickled; the trainer's key and its creation."""

import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from model import artifact, signing
from tests.fixtures.data import CHECKOUT_DIR
from tests.fixtures.keys import new_key_pair, session_key, session_trusted
from tests.fixtures.service import publish_copy, unpublished
from tests.support.forgery import RunsCode, forge_version


@pytest.fixture
def model_dir(tmp_path, sample_model_dir) -> Path:
    target = tmp_path / "models"
    publish_copy(sample_model_dir, target, source="test")
    return target


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "the-attackers-code-ran"


def other_key(directory: Path) -> signing.SigningKey:
    key_file, trusted_dir = new_key_pair(directory)
    return signing.signing_key(key_file, trusted_dir, create=False)


def version_dir(model_dir: Path) -> Path:
    return model_dir / artifact.VERSIONS / artifact.current_version(model_dir)


def test_the_forged_pickle_runs_code_when_unpickled_unverified(tmp_path, marker):
    """What the refusals below keep from happening."""
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(RunsCode(marker)))
    joblib.load(tmp_path / "model.pkl")
    assert marker.exists()


def test_a_published_version_is_signed_by_the_publishers_key_and_loads(model_dir):
    signature = json.loads((version_dir(model_dir) / signing.SIGNATURE_FILE).read_text())
    assert signature["key_id"] == session_key().key_id
    assert artifact.load(model_dir, session_trusted()).metadata["source"] == "test"


def unsigned(model_dir: Path, marker: Path, tmp_path: Path) -> None:
    forge_version(model_dir, marker)


def signed_by_another_key(model_dir: Path, marker: Path, tmp_path: Path) -> None:
    forge_version(model_dir, marker, other_key(tmp_path / "attacker"))


def model_json_changed(model_dir: Path, marker: Path, tmp_path: Path) -> None:
    path = version_dir(model_dir) / artifact.METADATA_FILE
    path.write_bytes(path.read_bytes().replace(b'"source": "test"', b'"source": "tesT"'))


def model_pkl_replaced_and_sha256_fixed_up(model_dir: Path, marker: Path, tmp_path: Path) -> None:
    directory = version_dir(model_dir)
    payload = pickle.dumps(RunsCode(marker))
    (directory / artifact.MODEL_FILE).write_bytes(payload)
    metadata = json.loads((directory / artifact.METADATA_FILE).read_text())
    metadata["sha256"] = hashlib.sha256(payload).hexdigest()
    (directory / artifact.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))


def signature_of_another_version(model_dir: Path, marker: Path, tmp_path: Path) -> None:
    genuine = (version_dir(model_dir) / signing.SIGNATURE_FILE).read_bytes()
    forge_version(model_dir, marker)
    (version_dir(model_dir) / signing.SIGNATURE_FILE).write_bytes(genuine)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (unsigned, r"unsigned \(no model\.sig\)"),
        (signed_by_another_key, "signed by untrusted key '[0-9a-f]{16}'"),
        (model_json_changed, "bad signature"),
        (model_pkl_replaced_and_sha256_fixed_up, "bad signature"),
        (signature_of_another_version, "bad signature"),
    ],
)
def test_a_version_no_trusted_key_signed_is_refused_before_unpickling(
    model_dir, marker, tmp_path, forge, reason
):
    forge(model_dir, marker, tmp_path)
    with pytest.raises(artifact.UntrustedVersion, match=rf"{version_dir(model_dir)}: {reason}"):
        artifact.load(model_dir, session_trusted())
    assert not marker.exists()


def test_a_garbled_signature_file_is_refused(model_dir):
    (version_dir(model_dir) / signing.SIGNATURE_FILE).write_text('{"key_id": 1}')
    with pytest.raises(artifact.UntrustedVersion, match=r"model\.sig is unreadable"):
        artifact.load(model_dir, session_trusted())


def test_rotation_trusts_every_listed_key_until_one_is_removed(model_dir, tmp_path):
    new_key = other_key(tmp_path / "new")
    old_version = artifact.current_version(model_dir)
    trusted_dir = tmp_path / "trusted"
    trusted_dir.mkdir()
    for key in (session_key(), new_key):
        (trusted_dir / f"{key.key_id}.pem").write_bytes(signing.public_pem(key.private_key.public_key()))
    loaded = artifact.load(model_dir, signing.read_trusted_keys(trusted_dir))

    new_version = artifact.publish(loaded.predictor, unpublished(loaded.metadata), model_dir, new_key)
    both = signing.read_trusted_keys(trusted_dir)
    assert artifact.load(model_dir, both, old_version).version == old_version
    assert artifact.load(model_dir, both, new_version).version == new_version

    (trusted_dir / f"{session_key().key_id}.pem").unlink()
    only_new = signing.read_trusted_keys(trusted_dir)
    assert artifact.load(model_dir, only_new).version == new_version
    with pytest.raises(artifact.UntrustedVersion, match=f"signed by untrusted key '{session_key().key_id}'"):
        artifact.load(model_dir, only_new, old_version)


def test_trusted_keys_must_exist_and_be_ed25519_public_keys(tmp_path):
    with pytest.raises(signing.TrustedKeysError, match=f"no trusted keys in {tmp_path}"):
        signing.read_trusted_keys(tmp_path)
    key_file, _ = new_key_pair(tmp_path / "pair")
    (tmp_path / "private.pem").write_bytes(key_file.read_bytes())  # a private key, not a public one
    with pytest.raises(signing.TrustedKeysError, match=f"trusted key {tmp_path}/private.pem is not"):
        signing.read_trusted_keys(tmp_path)


def test_a_missing_key_is_not_created_when_creation_is_off(tmp_path):
    with pytest.raises(signing.SigningKeyError) as refused:
        signing.signing_key(tmp_path / "signing-key.pem", tmp_path / "trusted", create=False)
    assert str(refused.value) == (
        f"no signing key at {tmp_path}/signing-key.pem: create the Secret gender-model-signing-key "
        "in namespace gender-classifier (README: Signing keys)"
    )
    assert list(tmp_path.iterdir()) == []


FIRST_USE = """
import sys
from model import signing
print(signing.signing_key(sys.argv[1], sys.argv[2], create=True).key_id)
"""


def test_first_use_creates_one_pair_even_when_processes_start_together(tmp_path):
    key_file, trusted_dir = tmp_path / "keys" / "signing-key.pem", tmp_path / "keys" / "trusted"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, str(key_file), str(trusted_dir)],
            cwd=CHECKOUT_DIR,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    key_ids = {starter.communicate()[0].strip() for starter in starters}
    assert [starter.returncode for starter in starters] == [0] * 4
    assert len(key_ids) == 1
    [key_id] = key_ids
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert [p.name for p in trusted_dir.iterdir()] == [f"{key_id}.pem"]
    # Used again, not replaced.
    assert signing.signing_key(key_file, trusted_dir, create=True).key_id == key_id


def test_new_key_writes_a_pair_and_prints_the_commands_that_install_it(tmp_path, capsys):
    assert signing.main(["new-key", str(tmp_path)]) == 0
    key = signing.signing_key(tmp_path / "signing-key.pem", tmp_path / "trusted", create=False)
    printed = capsys.readouterr().out
    public_file = tmp_path / "trusted" / f"{key.key_id}.pem"
    assert f"create configmap gender-model-trusted-keys --from-file={public_file}" in printed
    assert f"create secret generic gender-model-signing-key --from-file=signing-key.pem={tmp_path}" in printed
    assert list(signing.read_trusted_keys(tmp_path / "trusted")) == [key.key_id]
    assert signing.main(["new-key", str(tmp_path)]) == 2, "never overwrites a key"

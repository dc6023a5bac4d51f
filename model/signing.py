"""Ed25519 signatures of published model versions, verified before anything is unpickled.

The trainer signs a version's manifest: model.pkl's sha256 and model.json's exact bytes (which hold
that sha256 and the version id, so a signature of one version does not fit another). Readers trust
the public keys of a directory (*.pem, one key each; several while a key is being rotated) and read
it at every load, so a changed ConfigMap is picked up without a restart.

`python -m model.signing new-key DIR` writes a new key pair, DIR/signing-key.pem and
DIR/trusted/<key id>.pem (the local layout of var/keys), and prints the kubectl commands that
install it (README: Signing keys).
"""

import argparse
import base64
import fcntl
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from model.exit_codes import ExitCode
from model.settings import SettingsError

SIGNATURE_FILE = "model.sig"
MANIFEST_HEADER = b"gender-classifier model v1\n"
KEY_ID_HEX = 16
# A PEM Ed25519 key and a model.sig are about a hundred bytes each; anything far larger is not one.
MAX_KEY_BYTES = 4096
KEYS_LOCK = ".keys.lock"
# The Kubernetes Secret that holds the trainer's key, and the key's name in it (names, not secrets).
SIGNING_KEY_SECRET = "gender-model-signing-key"  # noqa: S105
SIGNING_KEY_SECRET_KEY = "signing-key.pem"  # noqa: S105
TRUSTED_KEYS_CONFIGMAP = "gender-model-trusted-keys"
NAMESPACE = "gender-classifier"

TrustedKeys = dict[str, Ed25519PublicKey]  # key id -> public key


class BadSignature(Exception):
    """A version that is unsigned, signed by a key that is not trusted, or whose signature is wrong
    (model.artifact raises it as UntrustedVersion, an ArtifactError)."""


class TrustedKeysError(SettingsError):
    """The trusted keys directory holds no usable key, or a file in it is not one."""


class SigningKeyError(SettingsError):
    """The trainer's private key is missing or unreadable; the message says which Secret to create."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of the raw public key: names the key in signature files and log lines."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def manifest(model_sha256: str, metadata_bytes: bytes) -> bytes:
    """The signed message: a domain-separating header, model.pkl's digest, model.json's bytes."""
    return MANIFEST_HEADER + model_sha256.encode() + b"\n" + metadata_bytes


def signature_document(key: SigningKey, model_sha256: str, metadata_bytes: bytes) -> bytes:
    """The content of model.sig for these files."""
    signature = key.private_key.sign(manifest(model_sha256, metadata_bytes))
    return json.dumps({"key_id": key.key_id, "signature": base64.b64encode(signature).decode()}).encode()


def verify(version_dir: Path, trusted: TrustedKeys, model_sha256: str, metadata_bytes: bytes) -> str:
    """Check model.sig of `version_dir` against the trusted keys; returns the signing key's id."""
    path = Path(version_dir) / SIGNATURE_FILE
    try:
        document = json.loads(_read_small(path))
        signer, signature = document["key_id"], base64.b64decode(document["signature"], validate=True)
    except FileNotFoundError:
        raise BadSignature(
            f"{version_dir}: unsigned (no {SIGNATURE_FILE}); refusing to unpickle it: "
            "publish models only with the trainer (jobs.retrain), which signs them"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadSignature(
            f"{version_dir}: {SIGNATURE_FILE} is unreadable ({error}); refusing to unpickle it"
        ) from None
    public_key = trusted.get(signer) if isinstance(signer, str) else None
    if public_key is None:
        raise BadSignature(
            f"{version_dir}: signed by untrusted key {str(signer)[:KEY_ID_HEX]!r} (trusted: "
            f"{', '.join(sorted(trusted))}); refusing to unpickle it: retrain with a trusted signing "
            f"key, or add that key's public key to the trusted keys if it is yours"
        )
    try:
        public_key.verify(signature, manifest(model_sha256, metadata_bytes))
    except InvalidSignature:
        raise BadSignature(
            f"{version_dir}: bad signature by key {signer} (model.json was changed after signing, "
            "or model.sig is another version's); refusing to unpickle it: retrain to publish a new "
            "version"
        ) from None
    return signer


def _read_small(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(MAX_KEY_BYTES + 1)


def read_trusted_keys(directory: Path) -> TrustedKeys:
    """Every *.pem public key of `directory`, by key id; TrustedKeysError when there is none or a
    file is not an Ed25519 public key."""
    directory = Path(directory)
    trusted: TrustedKeys = {}
    try:
        paths = sorted(directory.glob("*.pem"))
        for path in paths:
            data = _read_small(path)
            try:
                public_key = serialization.load_pem_public_key(data)
            except ValueError:
                public_key = None
            if len(data) > MAX_KEY_BYTES or not isinstance(public_key, Ed25519PublicKey):
                raise TrustedKeysError(f"trusted key {path} is not an Ed25519 public key in PEM")
            trusted[key_id(public_key)] = public_key
    except OSError as error:
        raise TrustedKeysError(f"cannot read the trusted keys in {directory} ({error})") from None
    if not trusted:
        raise TrustedKeysError(
            f"no trusted keys in {directory}: mount the ConfigMap {TRUSTED_KEYS_CONFIGMAP} there "
            "(README: Signing keys), or set GENDER_TRUSTED_KEYS_DIR"
        )
    return trusted


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_signing_key(path: Path) -> SigningKey:
    try:
        data = _read_small(path)
    except FileNotFoundError:
        raise SigningKeyError(
            f"no signing key at {path}: create the Secret {SIGNING_KEY_SECRET} in namespace "
            f"{NAMESPACE} (README: Signing keys)"
        ) from None
    except OSError as error:
        raise SigningKeyError(f"cannot read the signing key {path} ({error.strerror})") from None
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        private_key = None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an unencrypted Ed25519 private key in PEM (PKCS8)")
    return SigningKey(key_id(private_key.public_key()), private_key)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `path` whole or not at all: a temporary file renamed into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_key_pair(private_key: Ed25519PrivateKey, key_file: Path, trusted_dir: Path) -> str:
    """The private key at `key_file` (0600) and its public key as trusted_dir/<key id>.pem."""
    identifier = key_id(private_key.public_key())
    Path(trusted_dir).mkdir(parents=True, exist_ok=True)
    _write_new(Path(trusted_dir) / f"{identifier}.pem", public_pem(private_key.public_key()), 0o644)
    _write_new(Path(key_file), private_pem(private_key), 0o600)
    return identifier


def signing_key(key_file: Path, trusted_dir: Path, create: bool) -> SigningKey:
    """The trainer's key. When `create` allows it and there is none yet (local first use), a new
    pair is made, its public key trusted; processes starting together make one pair between them."""
    key_file = Path(key_file)
    if not create or key_file.exists():
        return _load_signing_key(key_file)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    with open(key_file.parent / KEYS_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not key_file.exists():  # else another process made it while this one waited
            write_key_pair(Ed25519PrivateKey.generate(), key_file, trusted_dir)
    return _load_signing_key(key_file)


def check_trusted(key: SigningKey, trusted: TrustedKeys, trusted_dir: Path) -> None:
    """Refuse to publish what no reader would load: the signing key must be among the trusted."""
    if key.key_id not in trusted:
        raise SigningKeyError(
            f"the signing key {key.key_id} is not among the trusted keys in {trusted_dir} "
            f"({', '.join(sorted(trusted))}): add its public key to the ConfigMap "
            f"{TRUSTED_KEYS_CONFIGMAP} first (README: Signing keys)"
        )


def new_key_command(directory: Path) -> int:
    """Write a new pair into `directory` and print how to install it in the cluster."""
    directory = Path(directory)
    key_file = directory / SIGNING_KEY_SECRET_KEY
    if key_file.exists():
        print(f"error: {key_file} exists; choose an empty directory", file=sys.stderr)
        return ExitCode.USAGE
    identifier = write_key_pair(Ed25519PrivateKey.generate(), key_file, directory / "trusted")
    public_file = directory / "trusted" / f"{identifier}.pem"
    print(f"new signing key {identifier}: private {key_file}, public {public_file}")
    print("trust it (keep the old public keys while a rotation is under way):")
    print(
        f"  kubectl -n {NAMESPACE} create configmap {TRUSTED_KEYS_CONFIGMAP} "
        f"--from-file={public_file} --dry-run=client -o yaml | kubectl apply -f -"
    )
    print("then sign with it:")
    print(
        f"  kubectl -n {NAMESPACE} create secret generic {SIGNING_KEY_SECRET} "
        f"--from-file={SIGNING_KEY_SECRET_KEY}={key_file} --dry-run=client -o yaml | kubectl apply -f -"
    )
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.signing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    new_key = commands.add_parser("new-key", help="write a new signing key pair into a directory")
    new_key.add_argument(
        "directory", type=Path, help="where to write signing-key.pem and trusted/<key id>.pem"
    )
    args = parser.parse_args(argv)
    return new_key_command(args.directory)


if __name__ == "__main__":
    sys.exit(main())

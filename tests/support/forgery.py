"""Model versions as someone who can write the model volume, but holds no trusted key, makes them."""

import hashlib
import json
import pickle
import shutil
from pathlib import Path

from model import artifact, signing


class RunsCode:
    """A pickle whose unpickling creates `marker`: proof that a reader ran the attacker's code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def sign(version_dir: Path, key: signing.SigningKey) -> None:
    """(Re)write model.sig for the version's model.json as it is now."""
    metadata_bytes = (version_dir / artifact.METADATA_FILE).read_bytes()
    sha256 = json.loads(metadata_bytes)["sha256"]
    signature = signing.signature_document(key, sha256, metadata_bytes)
    (version_dir / signing.SIGNATURE_FILE).write_bytes(signature)


def forge_version(model_dir: Path, marker: Path, key: signing.SigningKey | None = None) -> str:
    """versions/<id>/ with a code-running model.pkl and a model.json consistent with it (this
    release's format, its sha256, the served version's other fields and model card), signed with
    `key` if given, made current; returns its id."""
    served = artifact.current_version(model_dir)
    template = (model_dir / artifact.VERSIONS / served / artifact.METADATA_FILE) if served else None
    version = artifact.new_version_id()
    version_dir = model_dir / artifact.VERSIONS / version
    version_dir.mkdir(parents=True)
    payload = pickle.dumps(RunsCode(marker))
    (version_dir / artifact.MODEL_FILE).write_bytes(payload)
    metadata = json.loads(template.read_text()) if template else {}
    if template and (template.parent / artifact.CARD_FILE).exists():
        shutil.copyfile(template.parent / artifact.CARD_FILE, version_dir / artifact.CARD_FILE)
    metadata |= {"format": artifact.FORMAT, "version": version, "sha256": hashlib.sha256(payload).hexdigest()}
    (version_dir / artifact.METADATA_FILE).write_text(json.dumps(metadata))
    if key is not None:
        sign(version_dir, key)
    artifact.replace_symlink(model_dir / artifact.CURRENT, f"{artifact.VERSIONS}/{version}")
    return version

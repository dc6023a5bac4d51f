"""Cluster CLI: train the first model, run the retraining CronJob now, wait for a rollout, promote a tag,
install the local model signing keys.

`python -m jobs.cluster {bootstrap,run-training,wait-ready,promote,install-keys} --help` for the options.
Credentials in kubectl's order: --kubeconfig, KUBECONFIG, ~/.kube/config, then the pod's service
account; namespace from GENDER_NAMESPACE or --namespace. Exit codes (model.exit_codes): OK, FAILED
(the Job or rollout failed), WRITER_BUSY (a run of the CronJob is still active), TIMEOUT, CLUSTER
(the API or its configuration), BAD_INPUT (an overlay), USAGE.
Messages go to stderr; stdout carries only the pods' logs (and promote's summary).
promote edits the overlay's `images:` (and its version label) by a ruamel.yaml round-trip, keeping
comments, order and quoting.
"""

import argparse
import base64
import copy
import math
import os
import re
import sys
from pathlib import Path

from pydantic import Field
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from jobs.cluster_api import (
    CONFIGMAPS_PATH,
    SECRETS_PATH,
    ClusterError,
    create_if_absent,
    load_api_client,
    run_from_cronjob,
    say,
    timestamped_name,
    wait_ready,
)
from jobs.settings import RetrainSettings
from model import signing
from model.exit_codes import ExitCode
from model.settings import GenderSettings, SettingsError

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # names that also fit the job-name label
RETRAIN_CRONJOB = "gender-retrain"
RETRAIN_CONTAINER = "retrain"
# jobs.retrain exits OK at once when a model is published: a second bootstrap changes nothing.
BOOTSTRAP_ENV = {RETRAIN_CONTAINER: {"GENDER_SKIP_IF_PUBLISHED": "true"}}
BOOTSTRAP_PREFIX = "gender-bootstrap"
DEFAULT_POLL_S = 2.0
IMAGES = ("gender-api", "gender-jobs", "gender-mlflow")
VERSION_LABEL = "app.kubernetes.io/version"  # names the release, so it follows the image tag
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Docker's grammar (distribution/reference): a tag, and a repository name with optional registry host.
TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
# A Kubernetes label value: the tag is also the app.kubernetes.io/version label.
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_VALUE_MAX = 63
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
REPOSITORY = re.compile(rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
MAPPING_INDENT = 2  # what kustomize and kubectl write
WIDTH = 4096  # never re-wrap long lines


def tag_type(value: str) -> str:
    """argparse type: a Docker image tag that is also a Kubernetes label value."""
    if not TAG.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid image tag (letters, digits, '_', '.', '-'; "
            "must not start with '.' or '-'; at most 128 characters)"
        )
    if len(value) > LABEL_VALUE_MAX or not LABEL_VALUE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid Kubernetes label value, which the tag becomes in {VERSION_LABEL} "
            f"(must start and end with a letter or digit; at most {LABEL_VALUE_MAX} characters)"
        )
    return value


def kustomization_file(overlay: Path) -> Path:
    if overlay.is_file():
        return overlay
    for name in KUSTOMIZATION_FILES:
        if (overlay / name).is_file():
            return overlay / name
    files = ", ".join(KUSTOMIZATION_FILES)
    raise ClusterError(f"no kustomization file ({files}) found in {overlay}", ExitCode.BAD_INPUT)


def new_name(registry: str | None, image: str) -> str | None:
    if registry is None:
        return None
    name = f"{registry.rstrip('/')}/{image}"
    if not REPOSITORY.fullmatch(name):
        message = f"--registry {registry!r} does not give a valid image name ({name!r})"
        raise ClusterError(message, ExitCode.USAGE)
    return name


def set_field(entry: CommentedMap, key: str, value: str, after: str) -> None:
    """Set entry[key], keeping the old scalar's quoting style, inserting a new key after `after`."""
    old = entry.get(key)
    if key in entry:
        entry[key] = type(old)(value) if isinstance(old, str) else value
    else:
        entry.insert(list(entry).index(after) + 1 if after in entry else len(entry), key, value)


def append_entry(images: CommentedSeq, entry: CommentedMap) -> None:
    """Append, moving the blank lines and comments that followed the list's old last entry
    (ruamel keeps them on that entry's last key) so that they still follow the list."""
    last = images[-1] if images and isinstance(images[-1], CommentedMap) and images[-1] else None
    token = last.ca.items.get(next(reversed(last)), [None] * 3)[2] if last else None
    if token is not None and "\n" in token.value:
        eol, _, following = token.value.partition("\n")
        moved = copy.copy(token)
        token.value, moved.value = eol + "\n", "\n" + following
        entry.ca.items[next(reversed(entry))] = [None, None, moved, None]
    images.append(entry)


def promote(overlay: Path, tag: str, registry: str | None) -> None:
    path = kustomization_file(overlay)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = WIDTH
    try:
        document, indent, offset = load_yaml_guess_indent(path.read_text(), yaml=yaml)
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}", ExitCode.BAD_INPUT) from exc
    if not isinstance(document, CommentedMap):
        raise ClusterError(f"{path} is not a kustomization (expected a YAML mapping)", ExitCode.BAD_INPUT)
    if document.get("images") is None:  # absent, or an empty `images:`
        document["images"] = CommentedSeq()
    images = document["images"]
    if not isinstance(images, CommentedSeq):
        raise ClusterError(f"{path}: 'images' must be a list", ExitCode.BAD_INPUT)
    entries = {entry.get("name"): entry for entry in images if isinstance(entry, CommentedMap)}
    for image in IMAGES:
        entry = entries.get(image, CommentedMap(name=image))
        name = new_name(registry, image)
        if name:
            set_field(entry, "newName", name, after="name")
        set_field(entry, "newTag", tag, after="newName")
        if image not in entries:
            append_entry(images, entry)
        if entry.pop("digest", None):  # kustomize would prefer a digest over the new tag
            print(f"promote: dropped the digest of {image} in favour of tag {tag}")
        print(f"promote: {image} -> {entry.get('newName', image)}:{tag}")
    for block in document.get("labels") or []:
        pairs = block.get("pairs") if isinstance(block, CommentedMap) else None
        if isinstance(pairs, CommentedMap) and VERSION_LABEL in pairs:
            set_field(pairs, VERSION_LABEL, tag, after=VERSION_LABEL)
            print(f"promote: label {VERSION_LABEL}={tag}")
    yaml.indent(mapping=MAPPING_INDENT, sequence=indent or MAPPING_INDENT, offset=offset or 0)
    temporary = path.with_name(f".{path.name}.promote")
    try:
        with temporary.open("w") as stream:
            yaml.dump(document, stream)
        os.replace(temporary, path)  # atomic: a failed write never leaves half a kustomization
    except OSError as exc:
        raise ClusterError(f"cannot write {path}: {exc}", ExitCode.BAD_INPUT) from exc


class ClusterSettings(GenderSettings):
    namespace: str = Field(default="gender-classifier", pattern=DNS_LABEL)


def key_objects() -> tuple[dict, dict]:
    """The Secret of the local signing key and the ConfigMap of the local trusted keys (made on
    first use, as a local training makes them)."""
    settings = RetrainSettings.from_env()
    key = signing.signing_key(
        settings.signing_key_file, settings.trusted_keys_dir, settings.signing_key_create
    )
    trusted = signing.read_trusted_keys(settings.trusted_keys_dir)
    signing.check_trusted(key, trusted, settings.trusted_keys_dir)
    labels = {"app.kubernetes.io/part-of": "gender-classifier", "app.kubernetes.io/component": "trainer"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": signing.SIGNING_KEY_SECRET, "labels": labels},
        "type": "Opaque",
        "data": {
            signing.SIGNING_KEY_SECRET_KEY: base64.b64encode(signing.private_pem(key.private_key)).decode()
        },
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": signing.TRUSTED_KEYS_CONFIGMAP,
            "labels": labels | {"app.kubernetes.io/component": "config"},
        },
        "data": {f"{key_id}.pem": signing.public_pem(public).decode() for key_id, public in trusted.items()},
    }
    return secret, configmap


def install_keys(api, namespace: str) -> None:
    """Create the key Secret and the trusted keys ConfigMap from the local pair, each only if absent:
    a cluster's own keys (README: Signing keys) are never replaced."""
    try:
        secret, configmap = key_objects()
    except SettingsError as exc:
        raise ClusterError(str(exc), ExitCode.USAGE) from None
    create_if_absent(api, namespace, CONFIGMAPS_PATH, configmap)
    create_if_absent(api, namespace, SECRETS_PATH, secret)


def settings_namespace() -> str:
    try:
        return ClusterSettings.from_env().namespace
    except SettingsError as exc:
        raise ClusterError(str(exc), ExitCode.USAGE) from None


def dns_label(value: str) -> str:
    if not re.match(DNS_LABEL, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Kubernetes name (lowercase DNS label, <= 63 chars)"
        )
    return value


def positive_seconds(value: str) -> float:
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.cluster", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    parser.add_argument("--namespace", type=dns_label, help="namespace (default: GENDER_NAMESPACE)")
    commands = parser.add_subparsers(dest="command", required=True)
    polling = argparse.ArgumentParser(add_help=False)
    polling.add_argument(
        "--poll-interval", type=positive_seconds, default=DEFAULT_POLL_S, help="seconds between polls"
    )

    job = argparse.ArgumentParser(add_help=False, parents=[polling])
    job.add_argument("--cronjob", type=dns_label, default=RETRAIN_CRONJOB, help="CronJob to instantiate")
    job.add_argument(
        "--timeout",
        type=positive_seconds,
        help="seconds to wait for the Job (default: its activeDeadlineSeconds plus the time to end it)",
    )
    job.add_argument(
        "--job-name",
        type=dns_label,
        help=(
            "name of the Job (default: <cronjob>-manual-<time>-<random>; "
            f"bootstrap: {BOOTSTRAP_PREFIX}-<time>-<random>)"
        ),
    )
    commands.add_parser(
        "bootstrap",
        parents=[job],
        help="train the first model (a retrain that exits at once when a model is published), print logs",
    )
    commands.add_parser("run-training", parents=[job], help="run the retraining CronJob now, print logs")

    ready = commands.add_parser("wait-ready", parents=[polling], help="wait for a Deployment's rollout")
    ready.add_argument("--deployment", type=dns_label, default="gender-api", help="Deployment to wait for")
    ready.add_argument(
        "--timeout", type=positive_seconds, default=300.0, help="seconds to wait for the rollout"
    )

    commands.add_parser(
        "install-keys",
        help=(
            f"create Secret {signing.SIGNING_KEY_SECRET} and ConfigMap {signing.TRUSTED_KEYS_CONFIGMAP} "
            "from the local key pair (GENDER_SIGNING_KEY_FILE, GENDER_TRUSTED_KEYS_DIR) where absent"
        ),
    )

    prom = commands.add_parser("promote", help="set the image tag in an overlay's kustomization file")
    prom.add_argument(
        "--overlay", type=Path, required=True, help="overlay directory or its kustomization file"
    )
    prom.add_argument("--tag", type=tag_type, required=True, help="image tag to promote")
    prom.add_argument("--registry", help="registry prefix for newName, e.g. ghcr.io/acme")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "promote":
            promote(args.overlay, args.tag, args.registry)
            return ExitCode.OK
        namespace = args.namespace or settings_namespace()
        with load_api_client(args.kubeconfig) as api:
            if args.command == "wait-ready":
                return wait_ready(api, namespace, args.deployment, args.timeout, args.poll_interval)
            if args.command == "install-keys":
                install_keys(api, namespace)
                return ExitCode.OK
            bootstrap = args.command == "bootstrap"
            prefix = BOOTSTRAP_PREFIX if bootstrap else f"{args.cronjob}-manual"
            return run_from_cronjob(
                api,
                namespace,
                args.cronjob,
                args.job_name or timestamped_name(prefix),
                args.timeout,
                args.poll_interval,
                BOOTSTRAP_ENV if bootstrap else None,
            )
    except ClusterError as exc:
        say(f"error: {exc}")
        return exc.code


if __name__ == "__main__":
    sys.exit(main())

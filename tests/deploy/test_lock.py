"""One locked set of dependencies for the images, and a base image pinned by digest.

uv.lock resolves pyproject.toml's dependency groups; each image installs its group's export,
requirements/<group>.txt, every package pinned with its hashes. The export is run again here into a
temporary folder: a lock that no longer matches pyproject.toml, or an export that no longer matches
the lock, fails. The API unpickles what the jobs pickle, so every package of serve has train's pin.
docker/Dockerfile installs each requirements file before copying anything else a build changes
(the dependency layers are keyed on the lock), and its default base carries a digest; `make push`
refuses images built on a base without one, and `make pin-base` writes the digest the registry
answers (both against a stand-in `docker` command: no registry answers here).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.requirements import Pin, read_pins

REQUIREMENTS_DIR = CHECKOUT_DIR / "requirements"
DOCKERFILE = CHECKOUT_DIR / "docker" / "Dockerfile"
PINNED_BASE = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")
DIGEST = "sha256:" + "b" * 64
UNPINNED_BASE = "gender-base:bookworm"
# What a `docker` stand-in answers, set per test: image inspect's output, buildx's index digest,
# and whether a pull succeeds. It logs every call.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$1 $2" in
    "buildx imagetools") [ -n "$FAKE_INDEX_DIGEST" ] && echo "$FAKE_INDEX_DIGEST" ;;
    "image inspect") echo "$FAKE_INSPECT" ;;
    "pull "*) [ -n "$FAKE_PULL" ] ;;
esac
"""


def pins(path: Path) -> dict[str, Pin]:
    return {pin.key: pin for pin in read_pins(path)}


def uv() -> str:
    """The uv of the dev group (`make venv`), else one on PATH."""
    found = shutil.which("uv", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        pytest.fail("no uv: `make venv` installs it with the dev group")
    return found


def test_requirements_are_the_export_of_a_lock_that_matches_pyproject(tmp_path):
    result = subprocess.run(
        ["make", "-s", "requirements", f"UV={uv()}", f"REQUIREMENTS_DIR={tmp_path}"],
        cwd=CHECKOUT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"uv.lock is stale (run `make lock`):\n{result.stderr}"
    exported = sorted(path.name for path in tmp_path.iterdir())
    assert exported == sorted(path.name for path in REQUIREMENTS_DIR.iterdir()), "run `make lock`"
    for name in exported:
        committed = (REQUIREMENTS_DIR / name).read_text()
        assert (tmp_path / name).read_text() == committed, f"requirements/{name} is stale: run `make lock`"


@pytest.mark.parametrize("path", sorted(REQUIREMENTS_DIR.glob("*.txt")), ids=lambda path: path.name)
def test_every_requirement_is_pinned_with_its_hashes(path):
    found = pins(path)
    assert found, f"{path.name} pins nothing"
    unhashed = [key for key, pin in found.items() if not pin.hashes]
    assert not unhashed, f"{path.name}: pins without a hash: {unhashed}"
    listed = [line for line in path.read_text().splitlines() if line and not line.startswith((" ", "#"))]
    assert len(listed) == len(found), f"{path.name} has requirements that are not name==version"


def installed_versions(path: Path) -> dict[str, str]:
    """Name → version of what an image installs from `path`: the pins whose marker holds here
    (Linux, CPython 3.11, as in the images)."""
    pins = read_pins(path)
    return {pin.name: pin.version for pin in pins if not pin.marker or Marker(pin.marker).evaluate()}


def test_the_api_unpickles_with_the_versions_that_pickled():
    serve = installed_versions(REQUIREMENTS_DIR / "serve.txt")
    train = installed_versions(REQUIREMENTS_DIR / "train.txt")
    differ = [name for name, version in serve.items() if train.get(name) != version]
    assert not differ, f"serve (api) pins these unlike train (jobs), or train lacks them: {differ}"


def dockerfile_stages() -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined), by stage name."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in joined.splitlines():
        if match := re.match(r"FROM (\S+) AS (\S+)", line):
            current = stages[match.group(2)] = [line]
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return stages


def lineage(stages: dict[str, list[str]], name: str) -> list[str]:
    """The instructions that build stage name: its parent stages' first."""
    parent = stages[name][0].split()[1]
    return [*(lineage(stages, parent) if parent in stages else []), *stages[name][1:]]


def test_dependency_layers_are_keyed_on_the_requirements_files():
    """Before each `pip install -r`, the stage has copied only requirements files and docker/
    scripts, so that code and pyproject.toml changes reuse the dependency layers; and every
    install is hashed, without dependency resolution (the lock resolved them), or a local wheel."""
    stages = dockerfile_stages()
    installs = 0
    for name in stages:
        before: list[str] = []
        for instruction in lineage(stages, name):
            if "pip install" in instruction:
                command = shlex.split(instruction)
                if "-r" in command:
                    installs += 1
                    requirements = command[command.index("-r") + 1]
                    assert (CHECKOUT_DIR / requirements).is_file(), f"{name}: no {requirements}"
                    assert {"--require-hashes", "--no-deps"} <= set(command), f"{name}: {instruction}"
                    copied = [source for copy in before for source in copy.split()[1:-1]]
                    assert all(s.startswith(("requirements/", "docker/")) for s in copied), (
                        f"{name}: {copied}"
                    )
                else:
                    wheels = [word for word in command if word.endswith(".whl")]
                    assert "--no-deps" in command and wheels, f"{name}: {instruction}"
            if instruction.startswith("COPY") and "--from=" not in instruction:
                before.append(instruction)
    assert installs, "docker/Dockerfile installs no requirements file"


def test_the_default_base_image_is_pinned_by_digest():
    (default,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert PINNED_BASE.match(default), f"docker/Dockerfile's base {default} has no digest: `make pin-base`"


@pytest.fixture
def fake_docker(tmp_path, monkeypatch) -> Path:
    """A `docker` first on PATH for the processes the test starts; returns its call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    for name in ("FAKE_INDEX_DIGEST", "FAKE_INSPECT", "FAKE_PULL"):
        monkeypatch.delenv(name, raising=False)
    return log


@pytest.mark.parametrize(("base", "pushed"), [(UNPINNED_BASE, False), (f"python:3.11-slim@{DIGEST}", True)])
def test_push_refuses_images_built_on_a_base_without_digest(fake_docker, monkeypatch, base, pushed):
    monkeypatch.setenv("FAKE_INSPECT", base)
    result = subprocess.run(
        ["make", "-s", "push", "TAG=t1", "REGISTRY=registry.invalid/gc"],
        cwd=CHECKOUT_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    pushes = [line for line in fake_docker.read_text().splitlines() if line.startswith("push ")]
    if pushed:
        assert result.returncode == 0, result.stderr
        assert pushes == [
            f"push registry.invalid/gc/gender-{name}:t1" for name in ("api", "jobs", "spark", "mlflow")
        ]
    else:
        assert result.returncode != 0
        assert f"built on '{UNPINNED_BASE}', not on a base pinned by digest" in result.stderr
        assert pushes == []


@pytest.mark.parametrize(
    ("answers", "pinned"),
    [
        ({"FAKE_INDEX_DIGEST": DIGEST}, DIGEST),  # buildx: the multi-platform index
        ({"FAKE_PULL": "1", "FAKE_INSPECT": f"python@{DIGEST}"}, DIGEST),  # no buildx: pull's digest
        ({"FAKE_INDEX_DIGEST": "latest"}, None),  # not a digest
        ({}, None),  # no registry answers
    ],
)
def test_pin_base_writes_the_digest_the_registry_answers(fake_docker, monkeypatch, tmp_path, answers, pinned):
    dockerfile = tmp_path / "Dockerfile"
    original = DOCKERFILE.read_text()
    dockerfile.write_text(original)
    for name, value in answers.items():
        monkeypatch.setenv(name, value)
    result = subprocess.run(
        ["docker/pin-base.sh", str(dockerfile)], cwd=CHECKOUT_DIR, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    (before,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", original, re.MULTILINE)
    if pinned:
        assert result.returncode == 0, result.stderr
        expected = f"ARG BASE_IMAGE={before.split('@')[0]}@{pinned}"
        assert dockerfile.read_text() == re.sub(
            r"^ARG BASE_IMAGE=\S+$", expected, original, flags=re.MULTILINE
        )
    else:
        assert result.returncode != 0
        assert dockerfile.read_text() == original

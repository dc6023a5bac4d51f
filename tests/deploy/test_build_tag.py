"""docker/build-tag.sh: the tag `make images` and `make deploy-minikube` give a build of the checkout.

A rebuild of different code must get a different tag, or the pods (imagePullPolicy IfNotPresent) keep
running the old image; the same tree must get the same tag, so that the images built and the tag
applied agree. The tag is also the overlay's app.kubernetes.io/version label, so it is a valid label value.
"""

import re
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.data import CHECKOUT_DIR

SCRIPT = CHECKOUT_DIR / "docker" / "build-tag.sh"
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
GIT = ["git", "-c", "user.name=A Person", "-c", "user.email=person@example.invalid"]


def tag(repo: Path) -> str:
    return subprocess.run([str(SCRIPT)], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("var/\n")
    (tmp_path / "app.py").write_text("VERSION = 1\n")
    subprocess.run([*GIT, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "app"], cwd=tmp_path, check=True)
    return tmp_path


def test_a_clean_tree_is_tagged_with_its_commit(repo):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    assert tag(repo) == commit[:12]


def test_every_different_tree_gets_its_own_tag_and_the_same_tree_the_same(repo):
    clean = tag(repo)
    (repo / "app.py").write_text("VERSION = 2\n")
    edited = tag(repo)
    assert edited.startswith(f"{clean}-dirty-")
    assert tag(repo) == edited
    (repo / "new.py").write_text("")
    untracked = tag(repo)
    (repo / "new.py").write_text("X = 1\n")
    assert len({clean, edited, untracked, tag(repo)}) == 4
    assert all(LABEL_VALUE.match(value) for value in (clean, edited, untracked))


def test_an_ignored_file_changes_no_tag(repo):
    clean = tag(repo)
    (repo / "var").mkdir()
    (repo / "var" / "model.pkl").write_text("ignored")
    assert tag(repo) == clean

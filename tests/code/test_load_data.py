"""jobs.load_data: a tar of CSVs on stdin replaces the data set whole, or changes nothing."""

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from model.exit_codes import ExitCode
from tests.fixtures.data import CHECKOUT_DIR


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def load(data_dir: Path, payload: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.load_data"],
        input=payload,
        env={"PATH": "/usr/bin:/bin", "GENDER_DATA_DIR": str(data_dir)},
        cwd=CHECKOUT_DIR,
        capture_output=True,
    )


@pytest.fixture
def sample_files(sample_data_dir) -> dict[str, bytes]:
    return {
        name: (sample_data_dir / name).read_bytes() for name in ("users.csv", "hotels.csv", "flights.csv")
    }


def test_a_data_set_is_loaded_and_replaces_the_old_one_whole(tmp_path, sample_files):
    data = tmp_path / "data"
    done = load(data, archive(sample_files))
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert {p.name: p.read_bytes() for p in data.iterdir()} == sample_files

    users_only = {"users.csv": sample_files["users.csv"]}
    assert load(data, archive(users_only)).returncode == ExitCode.OK
    # The old trips would not belong to the new users: they are gone, nothing else is left behind.
    assert {p.name: p.read_bytes() for p in data.iterdir()} == users_only


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"users.csv": b"code,company,name,gender,age\n0,4You,Roy Braun,male,abc\n"}, "column 'age'"),
        ({"hotels.csv": b"travelCode\n"}, "the archive has no users.csv"),
        ({"users.csv": b"x", "../users.csv": b"x"}, "unexpected '../users.csv'"),
    ],
)
def test_a_refused_archive_changes_nothing(tmp_path, sample_files, files, message):
    data = tmp_path / "data"
    assert load(data, archive(sample_files)).returncode == ExitCode.OK
    done = load(data, archive(files))
    assert done.returncode == ExitCode.BAD_INPUT
    assert message in done.stdout.decode() and b"Traceback" not in done.stdout + done.stderr
    assert {p.name: p.read_bytes() for p in data.iterdir()} == sample_files


def test_stdin_that_is_not_an_archive_is_refused(tmp_path):
    done = load(tmp_path / "data", b"code,company,name,gender,age\n")
    assert done.returncode == ExitCode.BAD_INPUT
    assert "not a tar archive" in done.stdout.decode()

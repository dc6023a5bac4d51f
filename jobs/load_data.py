"""Load a data set into the data volume, whole and validated:
`tar -c users.csv [hotels.csv] [flights.csv] | python -m jobs.load_data`.

The archive on stdin is unpacked into a temporary directory on the data volume itself, validated
with the loaders training uses, and only then renamed into GENDER_DATA_DIR file by file, users.csv
last. A trainer never reads a half-written or unvalidated file; a refused archive changes nothing.
A trip file the new set does not have is removed, so that old trips never mix with new users.
"""

import logging
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from jobs import entry
from jobs.settings import DataSettings
from model.data import DataError, load_dataset

USERS = "users.csv"
TRIPS = ("hotels.csv", "flights.csv")
CHUNK_BYTES = 1 << 20

log = logging.getLogger("jobs.load_data")


def unpack(archive: BinaryIO, into: Path) -> set[str]:
    """Write the archive's data files into `into`; anything but the known plain files is refused."""
    names = set()
    try:
        with tarfile.open(fileobj=archive, mode="r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isdir() and name in ("", "."):
                    continue
                if name not in (USERS, *TRIPS) or not member.isfile():
                    raise DataError("stdin", f"unexpected {name!r} in the archive; expected {USERS}, {TRIPS}")
                with tar.extractfile(member) as source, open(into / name, "wb") as target:
                    shutil.copyfileobj(source, target, CHUNK_BYTES)
                    target.flush()
                    os.fsync(target.fileno())
                names.add(name)
    except tarfile.TarError as error:
        raise DataError("stdin", f"not a tar archive ({error})") from None
    if USERS not in names:
        raise DataError("stdin", f"the archive has no {USERS}")
    return names


def load_data(settings: DataSettings, archive: BinaryIO) -> list[str]:
    """Replace the data set in settings.data_dir by the archive's; returns the file names loaded."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=data_dir) as scratch:
        incoming = Path(scratch)
        names = unpack(archive, incoming)
        trips = {name: incoming / name if name in names else None for name in TRIPS}
        load_dataset(incoming / USERS, trips["hotels.csv"], trips["flights.csv"])
        for name in TRIPS:
            if name in names:
                (incoming / name).replace(data_dir / name)
            else:
                (data_dir / name).unlink(missing_ok=True)
        (incoming / USERS).replace(data_dir / USERS)
    loaded = sorted(names)
    log.info("loaded %s into %s", ", ".join(loaded), data_dir)
    return loaded


def main() -> int:
    return entry.run("jobs.load_data", DataSettings, lambda settings: load_data(settings, sys.stdin.buffer))


if __name__ == "__main__":
    sys.exit(main())

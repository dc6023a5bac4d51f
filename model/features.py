"""Features, one code path for training and serving: FeatureBuilder.row().

A user is a mapping of any subset of the input contract's fields (model.contract; absent, None
or NaN where a value is missing): a JSON instance as it is, a table row through column_records().
row() turns one user into a tuple of Python floats; transform() converts the rows of a table to
a matrix with one numpy call. Most of the work is per user anyway (names, dictionary lookups),
and a request is one user: numpy calls per feature would cost far more than the arithmetic they
do. Only numpy on this path: the API image has no pandas.
"""

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from model import drift
from model.contract import KNOWN_COMPANIES, NUMERIC_FIELDS, TRAVEL_FIELDS
from model.names import NamePrior, parse_name, stated_gender

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
NGRAM_SIZES = (2, 3, 4)
# Laplace-style pseudo-counts: how much evidence a first name or n-gram needs to count.
NAME_SMOOTHING = 2.0
NGRAM_SMOOTHING = 1.0
CROSS_FIT_FOLDS = 5
_NO_PRIOR = (0.0, 0.0)  # log-odds, known
_NO_LEARNED = (0.0, 0.0)  # first-name log-odds, mean n-gram log-odds
_NO_COMPANY = (0.0,) * len(KNOWN_COMPANIES)
_COMPANY_ONE_HOT = {
    company: tuple(float(company == other) for other in KNOWN_COMPANIES) for company in KNOWN_COMPANIES
}
_LEARNED_COLUMNS = slice(NAME_FEATURES.index("first_name_log_odds"), len(NAME_FEATURES))

Columns = Mapping[str, Sequence]


def column_records(columns: Columns) -> Iterator[dict]:
    """Columns -> one dict per user (what row() reads)."""
    fields = list(columns)
    values = [column.tolist() if isinstance(column, np.ndarray) else column for column in columns.values()]
    return (dict(zip(fields, user, strict=True)) for user in zip(*values, strict=True))


def take(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    return {field: np.asarray(values)[index] for field, values in columns.items()}


def is_missing(value) -> bool:
    """Whether a value is missing: None or NaN."""
    return value is None or value != value  # value != value: NaN


def text_or_none(value) -> str | None:
    """A text field's value, None where it is missing (None, NaN) or empty."""
    return value if isinstance(value, str) and value else None


def _names(columns: Columns, n_rows: int) -> list[str | None]:
    return [text_or_none(name) for name in columns.get("name", [None] * n_rows)]


def first_names(columns: Columns, n_rows: int) -> list[str | None]:
    """The folded first name of every row, None where there is none."""
    return [parse_name(name).first_name for name in _names(columns, n_rows)]


def _observed(columns: Columns, field: str, n_rows: int) -> np.ndarray:
    """A numeric field's values, NaN where missing or absent."""
    raw = columns.get(field)
    if raw is None:
        return np.full(n_rows, np.nan)
    return np.array([np.nan if is_missing(v) else v for v in raw], dtype=float)


def char_ngrams(first_name: str) -> list[str]:
    """Character n-grams of a first name, with ^ and $ marking its start and end."""
    padded = f"^{first_name}$"
    return [padded[i : i + n] for n in NGRAM_SIZES for i in range(len(padded) - n + 1)]


def _log_odds_table(keys: Iterable[Sequence[str]], labels: np.ndarray, smoothing: float) -> dict[str, float]:
    """key -> smoothed log-odds of female among the training rows that have it."""
    female, total = Counter(), Counter()
    for row_keys, label in zip(keys, labels, strict=True):
        for key in set(row_keys):
            total[key] += 1
            female[key] += int(label)
    return {
        key: math.log((female[key] + smoothing) / (n - female[key] + smoothing)) for key, n in total.items()
    }


def without_names(columns: Columns) -> dict[str, np.ndarray]:
    """The same users as a client that sends no name sees them: name gone, its length kept."""
    names = columns.get("name")
    if names is None:
        return dict(columns)
    lengths = np.array([parse_name(text_or_none(name)).length or np.nan for name in names])
    return {**{k: v for k, v in columns.items() if k not in ("name", "title")}, "name_length": lengths}


class Encoded(NamedTuple):
    """One user as the predictor sees it: the model's features, the gender a title states, and the
    user's inputs as drift bins (model.drift.FEATURES, in order)."""

    features: tuple[float, ...]
    title_gender: str | None
    bins: tuple[str, ...]


class FeatureBuilder:
    """Turns users into FEATURE_NAMES values: row() for one, transform() for a table.

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
        n_rows = len(labels)
        parsed = [parse_name(name) for name in _names(columns, n_rows)]
        self.first_name_table, self.ngram_table = self._tables([p.first_name for p in parsed], labels)
        self.fill_values = {}
        for field in NUMERIC_FIELDS:
            observed = _observed(columns, field, n_rows)
            if field == "name_length":  # as row() sees it: the name's own length when there is one
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
        names = first_names(columns, len(labels))
        folds = np.random.default_rng(self.seed).integers(0, CROSS_FIT_FOLDS, len(labels))
        for fold in range(CROSS_FIT_FOLDS):
            inside = folds == fold
            if not inside.any():  # tiny data
                continue
            outside_names = [n for n, out in zip(names, ~inside, strict=True) if out]
            tables = self._tables(outside_names, labels[~inside])
            held_out = [n for n, ins in zip(names, inside, strict=True) if ins]
            features[inside, _LEARNED_COLUMNS] = [
                _learned(n, *tables) if n else _NO_LEARNED for n in held_out
            ]
        return features

    @staticmethod
    def _tables(
        first_names: list[str | None], labels: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float]]:
        named = [(n, y) for n, y in zip(first_names, labels, strict=True) if n]
        names = [n for n, _ in named]
        ys = np.array([y for _, y in named], dtype=int)
        return (
            _log_odds_table(([n] for n in names), ys, NAME_SMOOTHING),
            _log_odds_table((char_ngrams(n) for n in names), ys, NGRAM_SMOOTHING),
        )

    def _prior_features(self, first_name: str | None, country: str | None) -> tuple[float, float]:
        """(log-odds, 1.0 if statistics list the name); an absent first name gets zeros."""
        if first_name is None:
            return _NO_PRIOR
        log_odds, listed = self.prior.log_odds(first_name, country)
        return log_odds, 1.0 if listed else 0.0

    def _numeric_block(self, user: Mapping, fields: Sequence[str]) -> list[float]:
        """Each field's value (the training mean where missing), then 1.0 if all of them are missing."""
        block, all_missing = [], True
        for field in fields:
            value = user.get(field)
            if is_missing(value):
                block.append(self.fill_values.get(field, 0.0))
            else:
                block.append(value)
                all_missing = False
        block.append(1.0 if all_missing else 0.0)
        return block

    def row(self, user: Mapping, learned_cache: dict[str, tuple[float, float]]) -> Encoded:
        """FEATURE_NAMES values of one user, its title's gender and its drift bins. learned_cache:
        first name -> learned features, shared by the rows of one batch (batches repeat first names).

        A name is cleaned first (model.names): accents, case, spacing and invisible format
        characters do not change the answer, and a name that is blank once cleaned is no name.
        """
        parsed = parse_name(text_or_none(user.get("name")))
        first_name = parsed.first_name
        title = text_or_none(user.get("title"))
        given_length = parsed.length or user.get("name_length")
        missing_length = is_missing(given_length)
        length = self.fill_values.get("name_length", 0.0) if missing_length else given_length
        if not first_name:
            learned = _NO_LEARNED
        elif (learned := learned_cache.get(first_name)) is None:
            learned = learned_cache[first_name] = _learned(
                first_name, self.first_name_table, self.ngram_table
            )
        prior_log_odds, prior_known = self._prior_features(first_name, text_or_none(user.get("country")))
        company = user.get("company")
        title_gender = stated_gender(title, parsed)
        features = (
            1.0 if first_name else 0.0,
            length,
            prior_log_odds,
            prior_known,
            *learned,
            *self._numeric_block(user, ("age",)),
            # A company outside the training set is an unseen category: all zeros.
            *_COMPANY_ONE_HOT.get(company, _NO_COMPANY),
            *self._numeric_block(user, TRAVEL_FIELDS),
        )
        bins = (
            drift.numeric_bin("age", user.get("age")),
            drift.numeric_bin("name_length", given_length),
            drift.company_bin(company),
            drift.title_bin(title_gender, parsed.has_title or title is not None),
            drift.first_name_bin(first_name, prior_known == 1.0),
            drift.numeric_bin("travel_count", user.get("travel_count")),
            drift.numeric_bin("avg_flight_price", user.get("avg_flight_price")),
            drift.numeric_bin("hotel_nights", user.get("hotel_nights")),
        )
        return Encoded(features, title_gender, bins)

    def encode(self, users: Iterable[Mapping]) -> list[Encoded]:
        learned_cache: dict[str, tuple[float, float]] = {}
        return [self.row(user, learned_cache) for user in users]

    def rows(self, users: Iterable[Mapping]) -> list[tuple[float, ...]]:
        return [encoded.features for encoded in self.encode(users)]

    def transform(self, columns: Columns) -> np.ndarray:
        """The feature matrix of a table: one row per user, one column per FEATURE_NAMES entry."""
        return to_matrix(self.rows(column_records(columns)))


def to_matrix(rows: list[tuple[float, ...]]) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(len(rows), len(FEATURE_NAMES))  # reshape: for no rows


def _learned(first_name: str, first_name_table: dict[str, float], ngram_table: dict[str, float]) -> tuple:
    """(first-name log-odds, mean log-odds of its character n-grams), 0 where unseen in training."""
    grams = [ngram_table[g] for g in char_ngrams(first_name) if g in ngram_table]
    return first_name_table.get(first_name, 0.0), sum(grams) / len(grams) if grams else 0.0

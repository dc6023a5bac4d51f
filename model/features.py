"""Features, one code path for training and serving.

Input is columns: field name -> array or list, one entry per user, for any subset of INPUT_FIELDS
(None or NaN where a value is missing). A JSON request becomes columns of length one, a CSV
columns of length N, and both go through transform(), so they cannot drift.

Rows are built as tuples of Python floats (rows()), then converted with one numpy call when a
matrix is needed (transform()). Most of the work is per row anyway (names, dictionary lookups),
and a request is one row: a numpy call per feature would cost far more than the arithmetic it
does. Only numpy on this path: the API image has no pandas.
"""

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from model.names import TITLES, normalize_title, parse_name

# Bounds that file validation (model.data) and request validation (service.schema) share.
MAX_NAME_CHARS = 200
AGE_RANGE = (0, 120)
KNOWN_COMPANIES = ("4You", "Acme Factory", "Wonka Company", "Monsters CYA", "Umbrella LTDA")
TRAVEL_FIELDS = (
    "travel_count",
    "avg_flight_price",
    "total_flight_spend",
    "avg_distance",
    "share_economic",
    "share_premium",
    "share_firstclass",
    "hotel_nights",
    "avg_hotel_spend",
)
INPUT_FIELDS: dict[str, type] = {
    "name": str,
    "title": str,
    "age": float,
    "company": str,
    "name_length": int,
    **{field: int if field in ("travel_count", "hotel_nights") else float for field in TRAVEL_FIELDS},
}
# A row is four blocks, in this order (see transform).
NAME_FEATURES = (
    "has_name",
    "name_length",
    "title_gender",
    "prior_log_odds",
    "prior_log_births",
    "prior_known",
    "first_name_log_odds",
    "ngram_log_odds",
)
AGE_FEATURES = ("age", "age_missing")
COMPANY_FEATURES = tuple(f"company={company}" for company in KNOWN_COMPANIES)
TRAVEL_FEATURES = (*TRAVEL_FIELDS, "travel_missing")
FEATURE_NAMES = (*NAME_FEATURES, *AGE_FEATURES, *COMPANY_FEATURES, *TRAVEL_FEATURES)
NUMERIC_FIELDS = ("age", "name_length", *TRAVEL_FIELDS)
NGRAM_SIZES = (2, 3, 4)
# Laplace-style pseudo-counts: how much evidence a first name or n-gram needs to count.
NAME_SMOOTHING = 2.0
NGRAM_SMOOTHING = 1.0
CROSS_FIT_FOLDS = 5
_TITLE_SIGN = {"male": -1.0, "female": 1.0, None: 0.0}
_NO_PRIOR = (0.0, 0.0, 0.0)  # log-odds, log births, known
_NO_COMPANY = (0.0,) * len(KNOWN_COMPANIES)
_COMPANY_ONE_HOT = {
    company: tuple(float(company == other) for other in KNOWN_COMPANIES) for company in KNOWN_COMPANIES
}
_LEARNED_COLUMNS = slice(NAME_FEATURES.index("first_name_log_odds"), len(NAME_FEATURES))

Columns = Mapping[str, Sequence]


def records_to_columns(records: Sequence[dict]) -> dict[str, list]:
    """List of dicts (e.g. JSON instances) -> columns; fields no record has are left out.

    The name column is always there, so that the row count survives records with no field.
    """
    present = {"name"} | {field for record in records for field in record}
    return {field: [r.get(field) for r in records] for field in present}


def take(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    return {field: np.asarray(values)[index] for field, values in columns.items()}


def _numeric(columns: Columns, field: str, fill: float) -> tuple[list, list[bool]] | None:
    """(values with `fill` where missing, missing flags) of a numeric field; None if it is absent."""
    raw = columns.get(field)
    if raw is None:
        return None
    values = raw.tolist() if isinstance(raw, np.ndarray) else raw  # Python numbers: cheap per row
    missing = [v is None or v != v for v in values]  # v != v: NaN
    return [fill if gone else v for v, gone in zip(values, missing, strict=True)], missing


def _name_lengths(names: list, given: Iterable) -> list:
    """The length of the name when there is one, else the name_length a client sent."""
    return [len(n) if n else g for n, g in zip(names, given, strict=True)]


def _text(columns: Columns, field: str, n_rows: int) -> list:
    raw = columns.get(field)
    if raw is None:
        return [None] * n_rows
    return [v if isinstance(v, str) and v else None for v in raw]


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
    lengths = np.array([len(n) if isinstance(n, str) and n else np.nan for n in names])
    return {**{k: v for k, v in columns.items() if k not in ("name", "title")}, "name_length": lengths}


class FeatureBuilder:
    """Turns columns into a dense float matrix (columns: FEATURE_NAMES).

    Holds the SSA prior (fixed) and two tables learned from training labels: first-name and
    character n-gram log-odds. fit_transform cross-fits those tables so that the estimator
    never sees a training row's own label through them, as it will not on unseen names.
    """

    def __init__(self, prior: dict[str, tuple[float, float]], seed: int = 0):
        self.prior = prior
        self.seed = seed
        self.first_name_table: dict[str, float] = {}
        self.ngram_table: dict[str, float] = {}
        # A missing number takes the training mean: "unknown" then reads as "typical", never as
        # zero trips or a zero-length name, which a model would extrapolate from.
        self.fill_values: dict[str, float] = {}

    def fit(self, columns: Columns, labels: np.ndarray) -> "FeatureBuilder":
        n_rows = len(labels)
        names = _text(columns, "name", n_rows)
        first_names = [parse_name(name)[1] for name in names]
        self.first_name_table, self.ngram_table = self._tables(first_names, labels)
        self.fill_values = {}
        for field in NUMERIC_FIELDS:
            found = _numeric(columns, field, math.nan)
            values = found[0] if found else [math.nan] * n_rows
            if field == "name_length":  # as transform sees it: the name's own length when there is one
                values = _name_lengths(names, values)
            observed = np.array(values, dtype=float)
            self.fill_values[field] = float(np.nanmean(observed)) if not np.isnan(observed).all() else 0.0
        return self

    def training_matrix(self, columns: Columns, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit, and return the training matrix and labels, every user twice: with and without a name.

        Requests may omit the name; without nameless rows in training, a model would extrapolate
        for them from name features set to zero instead of answering the base rate honestly.
        """
        named = self.fit_transform(columns, labels)
        nameless = self.transform(without_names(columns))
        return np.vstack([named, nameless]), np.concatenate([labels, labels])

    def fit_transform(self, columns: Columns, labels: np.ndarray) -> np.ndarray:
        self.fit(columns, labels)
        features = self.transform(columns)
        first_names = [parse_name(name)[1] for name in _text(columns, "name", len(labels))]
        folds = np.random.default_rng(self.seed).integers(0, CROSS_FIT_FOLDS, len(labels))
        for fold in range(CROSS_FIT_FOLDS):
            inside = folds == fold
            if not inside.any():  # tiny data
                continue
            outside_names = [n for n, out in zip(first_names, ~inside, strict=True) if out]
            tables = self._tables(outside_names, labels[~inside])
            held_out = [n for n, ins in zip(first_names, inside, strict=True) if ins]
            features[inside, _LEARNED_COLUMNS] = self._learned_features(held_out, *tables)
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

    @staticmethod
    def _learned_features(first_names, first_name_table, ngram_table) -> list[tuple[float, float]]:
        """(first-name log-odds, mean n-gram log-odds) per row; absent first names get zeros."""
        seen: dict[str | None, tuple[float, float]] = {None: (0.0, 0.0)}  # batches repeat first names
        out = []
        for first_name in first_names:
            if first_name not in seen:
                grams = [ngram_table[g] for g in char_ngrams(first_name) if g in ngram_table]
                seen[first_name] = (
                    first_name_table.get(first_name, 0.0),
                    sum(grams) / len(grams) if grams else 0.0,
                )
            out.append(seen[first_name])
        return out

    def _prior_features(self, first_name: str | None) -> tuple[float, float, float]:
        """(log-odds, log births, known); unknown or absent first names get zeros."""
        prior = self.prior.get(first_name)
        return _NO_PRIOR if prior is None else (*prior, 1.0)

    def _name_block(self, columns: Columns, n_rows: int) -> list[tuple]:
        """NAME_FEATURES of each row."""
        names = _text(columns, "name", n_rows)
        parsed = [parse_name(name) for name in names]
        first_names = [first for _, first in parsed]
        fill = self.fill_values.get("name_length", 0.0)
        given_length = _numeric(columns, "name_length", fill)
        lengths = _name_lengths(names, given_length[0] if given_length else itertools.repeat(fill, n_rows))
        learned = self._learned_features(first_names, self.first_name_table, self.ngram_table)
        rows = zip(parsed, _text(columns, "title", n_rows), lengths, learned, strict=True)
        return [
            (
                1.0 if first else 0.0,
                length,
                # A title given on its own wins over one written in the name.
                _TITLE_SIGN[TITLES.get(normalize_title(given_title) or title)],
                *self._prior_features(first),
                *learned_pair,
            )
            for (title, first), given_title, length, learned_pair in rows
        ]

    def _numeric_block(self, columns: Columns, fields: Sequence[str], n_rows: int) -> Iterable[tuple]:
        """Per row: each field's value (the training mean where missing), then 1.0 if all are missing."""
        fills = [self.fill_values.get(field, 0.0) for field in fields]
        if columns.keys().isdisjoint(fields):  # a request usually sends no travel data
            return itertools.repeat((*fills, 1.0), n_rows)
        values, missing = [], []
        for field, fill in zip(fields, fills, strict=True):
            found = _numeric(columns, field, fill)
            if found is None:  # absent: its mean on every row, and no say in the missing flag
                values.append(itertools.repeat(fill, n_rows))
            else:
                values.append(found[0])
                missing.append(found[1])
        flags = [1.0 if all(row) else 0.0 for row in zip(*missing, strict=True)]
        return zip(*values, flags, strict=True)

    def transform(self, columns: Columns) -> np.ndarray:
        """The feature matrix: one row per user, one column per FEATURE_NAMES entry."""
        rows = self.rows(columns)
        return np.array(rows, dtype=float).reshape(len(rows), len(FEATURE_NAMES))  # reshape: for no rows

    def rows(self, columns: Columns) -> list[tuple[float, ...]]:
        """The same features as Python tuples, for scoring that needs no matrix (see pipeline)."""
        n_rows = len(next(iter(columns.values()))) if columns else 0
        companies = columns.get("company")
        blocks = zip(
            self._name_block(columns, n_rows),
            self._numeric_block(columns, ("age",), n_rows),
            itertools.repeat(_NO_COMPANY, n_rows) if companies is None else map(_company_one_hot, companies),
            self._numeric_block(columns, TRAVEL_FIELDS, n_rows),
            strict=True,
        )
        return [(*name, *age, *company, *travel) for name, age, company, travel in blocks]


def _company_one_hot(company: str | None) -> tuple[float, ...]:
    # A company outside the training set is an unseen category: all zeros.
    return _COMPANY_ONE_HOT.get(company, _NO_COMPANY)

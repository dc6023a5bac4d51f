"""Input drift: each user's inputs as bins, the share of users in each bin, and the population
stability index (PSI) of a set of users against a model's training users.

The bins are fixed here rather than learned from a model's training data: every model version then
counts the same bins, so live counts keep their meaning across a model swap and Prometheus holds a
few series per feature. A bin never carries a name, only what kind of name it is.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

from model.contract import KNOWN_COMPANIES

MISSING = "missing"


def _ranges(edges: tuple[int, ...], first: int = 0) -> tuple[str, ...]:
    """Labels of the integer ranges that `edges` split [first, infinity) into: 0-17, 18-24, ..., 65+."""
    starts = (first, *edges[:-1])
    labels = [f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in zip(starts, edges, strict=True)]
    return (*labels, f"{edges[-1]}+")


# Numeric inputs: the lower edges of the bins after the first (a value v is in the last bin whose
# edge is <= v).
NUMERIC_EDGES: dict[str, tuple[int, ...]] = {
    "age": (18, 25, 35, 45, 55, 65),
    "name_length": (10, 13, 16, 20),
    "travel_count": (1, 3, 6, 11),
    "avg_flight_price": (200, 500, 1000),
    "hotel_nights": (1, 6, 16, 41),
}
_NUMERIC_LABELS = {
    field: _ranges(edges, first=1 if field == "name_length" else 0) for field, edges in NUMERIC_EDGES.items()
}
# Every feature and its bins, in the order of a user's bins tuple.
FEATURES: dict[str, tuple[str, ...]] = {
    "age": (MISSING, *_NUMERIC_LABELS["age"]),
    "name_length": (MISSING, *_NUMERIC_LABELS["name_length"]),
    "company": (MISSING, *KNOWN_COMPANIES, "other"),
    "title": ("none", "gendered", "other"),
    "first_name": (MISSING, "known", "unknown"),
    "travel_count": (MISSING, *_NUMERIC_LABELS["travel_count"]),
    "avg_flight_price": (MISSING, *_NUMERIC_LABELS["avg_flight_price"]),
    "hotel_nights": (MISSING, *_NUMERIC_LABELS["hotel_nights"]),
}
FEATURE_NAMES = tuple(FEATURES)
# A share below this counts as this: an empty bin on one side would make the index infinite. The
# recording rules of the Prometheus route use the same floor.
PSI_FLOOR = 1e-4
PSI_ALERT = 0.2  # the usual reading: above 0.2 the population has shifted


_EDGE_ARRAYS = {field: np.array(edges, dtype=float) for field, edges in NUMERIC_EDGES.items()}
_BIN_INDEX = {feature: {value: i for i, value in enumerate(values)} for feature, values in FEATURES.items()}


def bin_index(feature: str, value: str) -> int:
    """The position of a bin in FEATURES[feature]: what a users' bins array holds."""
    return _BIN_INDEX[feature][value]


def numeric_bins(field: str, values: np.ndarray) -> np.ndarray:
    """The bin index of every value of a numeric field: MISSING (0) for NaN, else the last bin whose
    lower edge is <= the value."""
    return np.where(np.isnan(values), 0, 1 + np.searchsorted(_EDGE_ARRAYS[field], values, side="right"))


def company_bin(company) -> str:
    if not isinstance(company, str) or not company:
        return MISSING
    return company if company in KNOWN_COMPANIES else "other"


def title_bin(title_gender: str | None, has_title: bool) -> str:
    if title_gender is not None:
        return "gendered"
    return "other" if has_title else "none"


def first_name_bin(first_name: str | None, known: bool) -> str:
    if first_name is None:
        return MISSING
    return "known" if known else "unknown"


class BinCounts:
    """Users counted per feature and bin, added a batch at a time."""

    def __init__(self) -> None:
        self.counts = [np.zeros(len(values), dtype=np.int64) for values in FEATURES.values()]
        self.users = 0

    def add(self, bins: np.ndarray) -> "BinCounts":
        """Count users' bins: one row per user, one column per feature (bin indices, FEATURES order)."""
        self.users += len(bins)
        for feature, counts in enumerate(self.counts):
            counts += np.bincount(bins[:, feature], minlength=len(counts))
        return self

    def flat(self) -> list[int]:
        """The users, then every feature's counts in FEATURES order: one row of numbers to send."""
        return [self.users, *np.concatenate(self.counts).tolist()]

    def add_flat(self, flat: Sequence[int]) -> "BinCounts":
        """Add the users and counts of another BinCounts' flat()."""
        self.users += flat[0]
        start = 1
        for counts in self.counts:
            counts += np.asarray(flat[start : start + len(counts)], dtype=np.int64)
            start += len(counts)
        return self

    def shares(self) -> dict[str, dict[str, float]]:
        """{feature: {bin: share of the users}}; every bin is listed, 0.0 when empty."""
        users = self.users or 1  # no users: every count is 0
        return {
            feature: {
                value: int(count) / users for value, count in zip(FEATURES[feature], counts, strict=True)
            }
            for feature, counts in zip(FEATURE_NAMES, self.counts, strict=True)
        }


def psi(live: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Population stability index of one feature's shares against the reference's."""
    total = 0.0
    for value in set(live) | set(reference):
        a = max(live.get(value, 0.0), PSI_FLOOR)
        b = max(reference.get(value, 0.0), PSI_FLOOR)
        total += (a - b) * math.log(a / b)
    return total


def reference(counts: BinCounts, female_share: float) -> dict:
    """What model.json records of the training users, for drift to be measured against."""
    return {"features": counts.shares(), "female_share": female_share, "users": counts.users}


def drift(counts: BinCounts, against: Mapping) -> dict:
    """The PSI per feature of the counted users against a model's reference, with their shares."""
    live = counts.shares()
    return {
        "users": counts.users,
        "psi": {feature: psi(live[feature], against["features"][feature]) for feature in FEATURE_NAMES},
        "features": live,
    }

"""Candidate estimators and the small hyperparameter grid each one is searched over."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

N_JOBS = 2  # the machines this runs on have two cores


@dataclass(frozen=True)
class Candidate:
    name: str
    grid: dict[str, list]
    # (params, labels) -> unfitted estimator; labels give the class balance for weighting.
    build: Callable[[dict, np.ndarray], object]

    def param_sets(self) -> Iterator[dict]:
        keys = sorted(self.grid)
        for values in product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))


def _logistic_regression(params: dict, _labels: np.ndarray):
    classifier = LogisticRegression(C=params["C"], class_weight="balanced", max_iter=2000)
    return Pipeline([("scale", StandardScaler()), ("classify", classifier)])


def _random_forest(params: dict, _labels: np.ndarray):
    return RandomForestClassifier(
        n_estimators=150,
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        class_weight="balanced",
        n_jobs=N_JOBS,
        random_state=0,
    )


def _xgboost(params: dict, labels: np.ndarray):
    positives = max(int(labels.sum()), 1)
    return XGBClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        learning_rate=0.1,
        subsample=0.9,
        scale_pos_weight=(len(labels) - positives) / positives,
        tree_method="hist",
        n_jobs=N_JOBS,
        random_state=0,
        verbosity=0,
    )


# In order of simplicity: on a tie, the earlier (simpler, faster to serve) candidate wins.
CANDIDATES = (
    Candidate("logistic_regression", {"C": [0.1, 1.0, 10.0]}, _logistic_regression),
    Candidate("random_forest", {"max_depth": [None, 8], "min_samples_leaf": [2]}, _random_forest),
    Candidate("xgboost", {"max_depth": [2, 4], "n_estimators": [150]}, _xgboost),
)

"""The fitted model: features and estimator in one object, the thing model.pkl holds."""

import math
import operator
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from model.features import FeatureBuilder, to_matrix

CLASSES = ("male", "female")  # label 1 is female


class Prediction(NamedTuple):
    gender: str
    probability: float  # probability of `gender`


class GenderPredictor:
    """Users in (JSON instances, or a table's column_records), predictions out; batch scoring,
    serving and the MLflow pyfunc all call this."""

    def __init__(self, features: FeatureBuilder, estimator, candidate: str):
        self.features = features
        self.candidate = candidate
        self._linear = _linear_form(estimator)
        # A linear model is kept as its weights alone: unpickling it then needs numpy only, not
        # scikit-learn and SciPy, so a serving worker starts sooner and holds less memory.
        self.estimator = None if self._linear is not None else _single_threaded(estimator)

    def predict(self, users: Iterable[Mapping]) -> list[Prediction]:
        """The likelier gender of every user, with its probability."""
        female = self.female_probability(users)
        return [Prediction("female", p) if p >= 0.5 else Prediction("male", 1.0 - p) for p in female]

    def female_probability(self, users: Iterable[Mapping]) -> list[float]:
        rows = self.features.rows(users)
        if self._linear is not None:
            # The estimator's predict_proba, folded into one dot product per row in plain Python:
            # no matrix, no numpy calls, whose fixed cost would dominate a one-row request.
            weights, bias = self._linear
            return [_logistic(sum(map(operator.mul, row, weights), bias)) for row in rows]
        return self.estimator.predict_proba(to_matrix(rows))[:, 1].tolist()


def _single_threaded(estimator):
    """Serving scores a row or a batch per request: a thread pool per call costs more than it gives."""
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    return estimator


def _logistic(z: float) -> float:
    # Either branch only ever exponentiates a non-positive number: no overflow for any z.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _linear_form(estimator) -> tuple[tuple[float, ...], float] | None:
    """(weights, bias) of a StandardScaler + LogisticRegression pipeline folded into one dot product."""
    steps = getattr(estimator, "named_steps", None)
    if not steps or set(steps) != {"scale", "classify"} or not hasattr(steps["classify"], "coef_"):
        return None
    scaler, classifier = steps["scale"], steps["classify"]
    coef = classifier.coef_[0] / scaler.scale_
    return tuple(coef.tolist()), float(classifier.intercept_[0] - coef @ scaler.mean_)

"""The fitted model: features and estimator in one object, the thing model.pkl holds."""

import math
import operator
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from model.features import Encoded, FeatureBuilder, to_matrix

CLASSES = ("male", "female")  # label 1 is female
# How sure a gendered title (Mrs, Herr, Sig.ra, ...) makes the answer, whatever the first name: the
# training data has no titles, so this is a rule, not a learned weight.
TITLE_PROBABILITY = 0.99


class Prediction(NamedTuple):
    gender: str
    probability: float  # probability of `gender`
    bins: tuple[str, ...]  # the user's inputs as drift bins (model.drift), for monitoring


class GenderPredictor:
    """Users in (JSON instances, or a table's column_records), predictions out; training's
    evaluation, batch scoring, serving and the MLflow pyfunc all call this."""

    def __init__(self, features: FeatureBuilder, estimator, candidate: str, temperature: float = 1.0):
        """`temperature` multiplies the estimator's log-odds (model.train fits it on people drawn
        from the first-name statistics): a scale that makes the probabilities honest for travellers
        whose names the training users lack, without changing any predicted gender."""
        self.features = features
        self.candidate = candidate
        self.temperature = temperature
        self._linear = _linear_form(estimator, temperature)
        # A linear model is kept as its weights alone: unpickling it then needs numpy only, not
        # scikit-learn and SciPy, so a serving worker starts sooner and holds less memory.
        self.estimator = None if self._linear is not None else _single_threaded(estimator)

    def predict(self, users: Iterable[Mapping]) -> list[Prediction]:
        """The likelier gender of every user, with its probability and the user's drift bins."""
        encoded = self.features.encode(users)
        return [
            Prediction("female", p, user.bins) if p >= 0.5 else Prediction("male", 1.0 - p, user.bins)
            for p, user in zip(self._female(encoded), encoded, strict=True)
        ]

    def female_probability(self, users: Iterable[Mapping]) -> list[float]:
        """The model's probability of female for each user, then what a gendered title states."""
        return self._female(self.features.encode(users))

    def _female(self, encoded: list[Encoded]) -> list[float]:
        rows = [user.features for user in encoded]
        if self._linear is not None:
            # The estimator's predict_proba, folded into one dot product per row in plain Python:
            # no matrix, no numpy calls, whose fixed cost would dominate a one-row request.
            weights, bias = self._linear
            scores = [_logistic(sum(map(operator.mul, row, weights), bias)) for row in rows]
        else:
            female = self.estimator.predict_proba(to_matrix(rows))[:, 1].tolist()
            scores = [_tempered(p, self.temperature) for p in female]
        return [title_decides(p, user.title_gender) for p, user in zip(scores, encoded, strict=True)]


def title_decides(female: float, title_gender: str | None) -> float:
    """A gendered title moves the answer to its gender, at least TITLE_PROBABILITY sure of it."""
    if title_gender == "female":
        return max(female, TITLE_PROBABILITY)
    if title_gender == "male":
        return min(female, 1.0 - TITLE_PROBABILITY)
    return female


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


def _tempered(female: float, temperature: float) -> float:
    if temperature == 1.0 or female in (0.0, 1.0):
        return female
    return _logistic(temperature * math.log(female / (1.0 - female)))


def _linear_form(estimator, temperature: float) -> tuple[tuple[float, ...], float] | None:
    """(weights, bias) of a StandardScaler + LogisticRegression pipeline folded into one dot product,
    times the temperature."""
    steps = getattr(estimator, "named_steps", None)
    if not steps or set(steps) != {"scale", "classify"} or not hasattr(steps["classify"], "coef_"):
        return None
    scaler, classifier = steps["scale"], steps["classify"]
    coef = classifier.coef_[0] / scaler.scale_
    bias = float(classifier.intercept_[0] - coef @ scaler.mean_)
    return tuple((temperature * coef).tolist()), temperature * bias

"""The fitted model: features and estimator in one object, the thing model.pkl holds."""

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

from model import drift
from model.features import TITLE_GENDERS, Columns, FeatureBuilder, columns_of

CLASSES = ("male", "female")  # label 1 is female
# How sure a gendered title (Mrs, Herr, Sig.ra, ...) makes the answer, whatever the first name: the
# training data has no titles, so this is a rule, not a learned weight.
TITLE_PROBABILITY = 0.99


class Prediction(NamedTuple):
    gender: str
    probability: float  # probability of `gender`
    bins: tuple[str, ...]  # the user's inputs as drift bins (model.drift), for monitoring


class Scores(NamedTuple):
    """A table's users scored, one entry per user."""

    female: np.ndarray  # the probability of female, after what a gendered title states
    bins: np.ndarray  # the users' inputs as drift bins (model.features.Encoded.bins)


class GenderPredictor:
    """Users in, probabilities out: score() for a table's columns; predict() for JSON instances.
    Training's evaluation, batch scoring, serving and the MLflow pyfunc all call score()."""

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

    def score(self, columns: Columns) -> Scores:
        """The probability of female and the drift bins of every user of a table."""
        encoded = self.features.encode(columns)
        if self._linear is not None:
            weights, bias = self._linear
            female = logistic(encoded.features @ np.array(weights) + bias)
        else:
            female = tempered(self.estimator.predict_proba(encoded.features)[:, 1], self.temperature)
        return Scores(title_decides(female, encoded.title_gender), encoded.bins)

    def predict(self, users: Iterable[Mapping]) -> list[Prediction]:
        """The likelier gender of every user, with its probability and the user's drift bins."""
        female, bins = self.score(columns_of(users))
        labels, probabilities = likelier(female)
        bin_names = [drift.FEATURES[feature] for feature in drift.FEATURE_NAMES]
        return [
            Prediction(
                CLASSES[label], p, tuple(names[i] for names, i in zip(bin_names, user_bins, strict=True))
            )
            for label, p, user_bins in zip(
                labels.tolist(), probabilities.tolist(), bins.tolist(), strict=True
            )
        ]

    def female_probability(self, users: Iterable[Mapping]) -> np.ndarray:
        """The probability of female of each user (JSON instances), after what a title states."""
        return self.score(columns_of(users)).female


def likelier(female: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's likelier gender as its label (CLASSES index) and that gender's probability."""
    labels = (female >= 0.5).astype(np.intp)
    return labels, np.where(labels == 1, female, 1.0 - female)


def title_decides(female: np.ndarray, title_gender: np.ndarray) -> np.ndarray:
    """A gendered title moves the answer to its gender, at least TITLE_PROBABILITY sure of it
    (title_gender indexes model.features.TITLE_GENDERS)."""
    female = np.where(
        title_gender == TITLE_GENDERS.index("female"), np.maximum(female, TITLE_PROBABILITY), female
    )
    return np.where(
        title_gender == TITLE_GENDERS.index("male"), np.minimum(female, 1.0 - TITLE_PROBABILITY), female
    )


def _single_threaded(estimator):
    """Serving scores a row or a batch per request: a thread pool per call costs more than it gives."""
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    return estimator


def logistic(z: np.ndarray) -> np.ndarray:
    # Only ever exponentiates a non-positive number: no overflow for any z.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tempered(female: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their log-odds times `temperature`; 0 and 1 stay as they are."""
    if temperature == 1.0:
        return female
    with np.errstate(divide="ignore"):
        log_odds = np.log(female) - np.log1p(-female)
    return np.where((female == 0.0) | (female == 1.0), female, logistic(temperature * log_odds))


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

"""Evaluation protocols and metrics.

Two 5-fold protocols on the labelled users: stratified, and grouped by first name (every
test first name unseen in training). The grouped one measures what matters for new users,
so models are selected on it. Every fold is scored as serving scores (GenderPredictor), and the
selected model is also scored on travellers from other countries (model.name_data), with and
without their country, for accuracy and calibration.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from model.features import (
    Columns,
    FeatureBuilder,
    column_records,
    first_names,
    is_missing,
    take,
    text_or_none,
)
from model.name_data import Traveller
from model.names import NamePrior, parse_name
from model.pipeline import CLASSES, GenderPredictor

PROTOCOLS = ("stratified", "grouped")
SELECTION_PROTOCOL = "grouped"
N_FOLDS = 5
CALIBRATION_BINS = 10
# Upper bounds (exclusive) of the age bands that accuracy is broken down by, and the last band.
AGE_BANDS = ((30, "under 30"), (45, "30-44"), (60, "45-59"))
OLDEST_AGE_BAND = "60 and over"
UNKNOWN = "unknown"
Population = tuple[Columns, np.ndarray]


@dataclass(frozen=True)
class Fold:
    train_features: np.ndarray
    train_labels: np.ndarray
    builder: FeatureBuilder  # fitted on the training part
    test_columns: dict[str, np.ndarray]
    test_index: np.ndarray


def first_name_groups(columns: Columns) -> list[str]:
    """Group key per row: its first name; rows without one are each their own group."""
    return [name or f"#unnamed-{i}" for i, name in enumerate(first_names(columns))]


def _age_band(age) -> str:
    if is_missing(age):
        return UNKNOWN
    return next((band for bound, band in AGE_BANDS if age < bound), OLDEST_AGE_BAND)


def segment_labels(columns: Columns, prior: NamePrior) -> dict[str, list[str]]:
    """Each row's value of every segment that accuracy is broken down by: whether the first-name
    statistics list its first name (with its country, as the features ask them), whether a title
    comes with it, its age band and its company."""
    first_name, title, age_band, company = [], [], [], []
    for user in column_records(columns):
        parsed = parse_name(text_or_none(user.get("name")))
        if parsed.first_name is None:
            first_name.append("absent")
        else:
            listed = prior.log_odds(parsed.first_name, text_or_none(user.get("country")))[1]
            first_name.append("known to the prior" if listed else "unknown to the prior")
        given_title = text_or_none(user.get("title"))
        title.append("title" if parsed.has_title or given_title is not None else "no title")
        age_band.append(_age_band(user.get("age")))
        company.append(text_or_none(user.get("company")) or UNKNOWN)
    return {"first_name": first_name, "title": title, "age_band": age_band, "company": company}


def segment_accuracy(
    columns: Columns, labels: np.ndarray, female_probability: np.ndarray, prior: NamePrior
) -> dict[str, dict[str, dict]]:
    """{segment: {value: {"users", "accuracy"}}}: accuracy of `female_probability` (at 0.5) within each
    value of every segment_labels segment, values sorted by name."""
    right = (female_probability >= 0.5) == labels.astype(bool)
    result = {}
    for segment, values in segment_labels(columns, prior).items():
        values = np.array(values)
        result[segment] = {}
        for value in sorted(set(values.tolist())):
            inside = values == value
            result[segment][value] = {"users": int(inside.sum()), "accuracy": float(right[inside].mean())}
    return result


def make_folds(
    protocol: str,
    columns: Columns,
    labels: np.ndarray,
    prior: NamePrior,
    population: Population | None,
    seed: int,
) -> list[Fold]:
    """Split, then fit the features on each training part only (their tables learn from labels)."""
    if protocol == "stratified":
        splits = StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed).split(labels, labels)
    else:
        splitter = StratifiedGroupKFold(N_FOLDS, shuffle=True, random_state=seed)
        splits = splitter.split(labels, labels, groups=first_name_groups(columns))
    folds = []
    for train_index, test_index in splits:
        builder = FeatureBuilder(prior, seed)
        train_features, train_labels = builder.training_matrix(
            take(columns, train_index), labels[train_index], population
        )
        folds.append(
            Fold(
                train_features=train_features,
                train_labels=train_labels,
                builder=builder,
                test_columns=take(columns, test_index),
                test_index=test_index,
            )
        )
    return folds


def out_of_fold_probabilities(folds: list[Fold], build_estimator, n_rows: int) -> np.ndarray:
    """Probability of female for every row, each from the model that did not train on it."""
    probabilities = np.empty(n_rows)
    for fold in folds:
        estimator = build_estimator(fold.train_labels)
        estimator.fit(fold.train_features, fold.train_labels)
        predictor = GenderPredictor(fold.builder, estimator, "fold")
        probabilities[fold.test_index] = predictor.score(fold.test_columns).female
    return probabilities


def metrics(labels: np.ndarray, female_probability: np.ndarray, threshold: float = 0.5) -> dict:
    """Classification metrics of predicting female at `threshold` and above (serving's is 0.5)."""
    predicted = (female_probability >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, female_probability)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def calibration_bins(
    labels: np.ndarray, female_probability: np.ndarray, weights: np.ndarray
) -> list[tuple[float, float, float]]:
    """(share of the weight, mean probability of female, share of women) of each non-empty bin of
    CALIBRATION_BINS equal-width bins of the probability of female."""
    bins = np.minimum((female_probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    found = []
    for index in range(CALIBRATION_BINS):
        inside = bins == index
        weight = weights[inside]
        if weight.sum() > 0:
            found.append(
                (
                    float(weight.sum() / weights.sum()),
                    float(np.average(female_probability[inside], weights=weight)),
                    float(np.average(labels[inside], weights=weight)),
                )
            )
    return found


def expected_calibration_error(
    labels: np.ndarray, female_probability: np.ndarray, weights: np.ndarray
) -> float:
    """The weighted mean gap between predicted and observed share of women, over the bins."""
    return sum(
        share * abs(predicted - observed)
        for share, predicted, observed in calibration_bins(labels, female_probability, weights)
    )


def traveller_metrics(predictor: GenderPredictor, travellers: Sequence[Traveller]) -> dict[str, dict]:
    """Accuracy (overall and per country) and calibration on the travellers, without and with their
    country; each traveller weighs its Traveller.weight."""
    labels = np.array([t.female for t in travellers])
    weights = np.array([t.weight for t in travellers])
    countries = np.array([t.country for t in travellers])
    scores = {}
    for setting, with_country in (("without_country", False), ("with_country", True)):
        users = [
            {"name": t.name, "country": t.country} if with_country else {"name": t.name} for t in travellers
        ]
        female = np.array(predictor.female_probability(users))
        right = (female >= 0.5) == labels
        scores[setting] = {
            "accuracy": float(np.average(right, weights=weights)),
            "ece": expected_calibration_error(labels, female, weights),
            "calibration_bins": calibration_bins(labels, female, weights),
            "accuracy_by_country": {
                country: float(np.average(right[countries == country], weights=weights[countries == country]))
                for country in sorted(set(countries.tolist()))
            },
        }
    return scores


def _figure(size: tuple[float, float]):
    # Imported here: only training draws, and the API image has no matplotlib. A Figure of its own,
    # not pyplot's: drawing a file then switches no backend and leaves no figure open in the caller
    # (a notebook keeps its inline backend).
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def save_reliability_diagram(scores: dict[str, dict], title: str, path: Path) -> Path:
    """Observed share of women against the predicted probability, bin by bin, for each setting."""
    figure = _figure((4.5, 4))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for setting, result in scores.items():
        _, predicted, observed = zip(*result["calibration_bins"], strict=True)
        label = f"{setting.replace('_', ' ')} (ECE {result['ece']:.3f})"
        axes.plot(predicted, observed, marker="o", label=label)
    axes.set_xlabel("predicted probability of female")
    axes.set_ylabel("share of women")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def save_confusion_matrix(matrix: list[list[int]], title: str, path: Path) -> Path:
    figure = _figure((4, 3.5))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(np.array(matrix)):
        axes.text(column, row, str(value), ha="center", va="center", fontsize=12)
    axes.set_xticks([0, 1], labels=CLASSES)
    axes.set_yticks([0, 1], labels=CLASSES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path

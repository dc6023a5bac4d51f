"""Evaluation protocols and metrics.

Two 5-fold protocols on the labelled users: stratified, and grouped by first name (every
test first name unseen in training). The grouped one measures what matters for new users,
so models are selected on it. Every fold is scored as serving scores (GenderPredictor).
"""

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

from model.features import Columns, FeatureBuilder, column_records, first_names, take
from model.names import NamePrior
from model.pipeline import CLASSES, GenderPredictor

PROTOCOLS = ("stratified", "grouped")
SELECTION_PROTOCOL = "grouped"
N_FOLDS = 5
Population = tuple[Columns, np.ndarray]


@dataclass(frozen=True)
class Fold:
    train_features: np.ndarray
    train_labels: np.ndarray
    builder: FeatureBuilder  # fitted on the training part
    test_users: list[dict]
    test_index: np.ndarray


def first_name_groups(columns: Columns, n_rows: int) -> list[str]:
    """Group key per row: its first name; rows without one are each their own group."""
    return [name or f"#unnamed-{i}" for i, name in enumerate(first_names(columns, n_rows))]


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
        splits = splitter.split(labels, labels, groups=first_name_groups(columns, len(labels)))
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
                test_users=list(column_records(take(columns, test_index))),
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
        probabilities[fold.test_index] = predictor.female_probability(fold.test_users)
    return probabilities


def metrics(labels: np.ndarray, female_probability: np.ndarray) -> dict:
    predicted = (female_probability >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, female_probability)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def save_confusion_matrix(matrix: list[list[int]], title: str, path: Path) -> Path:
    # Imported here: only training draws, and the API image has no matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4, 3.5))
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
    plt.close(figure)
    return path

"""Calibration, thresholds and segments: what the reliability diagram, model.json and its card report."""

import numpy as np
import pytest

from model.evaluate import calibration_bins, expected_calibration_error, metrics, segment_accuracy
from model.names import NamePrior

# A prior that knows two first names (anna in every country, andrea as a man's in Italy only).
PRIOR = NamePrior({"anna": 3.0}, {"IT": {"andrea": -3.0}}, {})


def test_probabilities_that_match_the_observed_shares_have_no_calibration_error():
    # Half the users at 0.25 (a quarter of them women), half at 0.95 (nineteen in twenty).
    female = np.array([0.25] * 4 + [0.95] * 20)
    labels = np.array([1, 0, 0, 0] + [1] * 19 + [0])
    weights = np.ones(len(labels))
    assert expected_calibration_error(labels, female, weights) == pytest.approx(0.0)
    assert calibration_bins(labels, female, weights) == [
        pytest.approx((4 / 24, 0.25, 0.25)),
        pytest.approx((20 / 24, 0.95, 0.95)),
    ]


def test_the_error_is_the_weighted_gap_between_predicted_and_observed():
    female = np.array([0.99, 0.99, 0.01, 0.01])
    labels = np.array([1, 0, 0, 0])  # at 0.99 only half are women
    assert expected_calibration_error(labels, female, np.ones(4)) == pytest.approx(0.5 * 0.49 + 0.5 * 0.01)
    # Weights count as people: the wrong one weighing nothing leaves only the low bin's gap.
    weights = np.array([1.0, 0.0, 1.0, 1.0])
    assert expected_calibration_error(labels, female, weights) == pytest.approx(1 / 3 * 0.01 + 2 / 3 * 0.01)


def test_a_probability_of_one_falls_in_the_last_bin():
    bins = calibration_bins(np.array([1, 1]), np.array([1.0, 0.95]), np.ones(2))
    assert bins == [pytest.approx((1.0, 0.975, 1.0))]


def test_the_threshold_moves_predictions_between_the_classes():
    labels = np.array([1, 1, 0, 0])
    female = np.array([0.9, 0.6, 0.4, 0.1])
    assert metrics(labels, female)["accuracy"] == 1.0
    strict = metrics(labels, female, threshold=0.7)
    assert strict["accuracy"] == 0.75
    assert strict["confusion_matrix"] == [[2, 0], [1, 1]]
    assert strict["roc_auc"] == metrics(labels, female)["roc_auc"]  # the ranking does not move


def test_segments_split_the_users_and_count_each_one_once():
    columns = {
        "name": np.array(
            ["Anna Berg", "Dr. Anna Roth", "Andrea Conti", "Andrea Conti", "Zyx Ab", None], dtype=object
        ),
        "country": np.array(["SE", None, "IT", None, None, None], dtype=object),
        "age": np.array([25.0, 30.0, np.nan, 61.0, 44.0, 59.0]),
        "company": np.array(["Acme Factory", "Acme Factory", None, "4You", "4You", "4You"], dtype=object),
    }
    labels = np.array([1, 1, 0, 0, 1, 0])
    female = np.array([0.9, 0.2, 0.1, 0.1, 0.8, 0.7])  # the second and the last are wrong
    segments = segment_accuracy(columns, labels, female, PRIOR)
    assert segments["first_name"] == {
        # Andrea is listed in Italy only: with that country the prior knows it, without it, not.
        "known to the prior": {"users": 3, "accuracy": pytest.approx(2 / 3)},
        "unknown to the prior": {"users": 2, "accuracy": 1.0},
        "absent": {"users": 1, "accuracy": 0.0},
    }
    assert segments["title"] == {
        "title": {"users": 1, "accuracy": 0.0},
        "no title": {"users": 5, "accuracy": 0.8},
    }
    assert segments["age_band"] == {
        "under 30": {"users": 1, "accuracy": 1.0},
        "30-44": {"users": 2, "accuracy": 0.5},
        "45-59": {"users": 1, "accuracy": 0.0},
        "60 and over": {"users": 1, "accuracy": 1.0},
        "unknown": {"users": 1, "accuracy": 1.0},
    }
    assert segments["company"] == {
        "4You": {"users": 3, "accuracy": pytest.approx(2 / 3)},
        "Acme Factory": {"users": 2, "accuracy": 0.5},
        "unknown": {"users": 1, "accuracy": 1.0},
    }

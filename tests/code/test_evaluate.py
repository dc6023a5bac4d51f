"""Calibration measures: what the reliability diagram and model.json report."""

import numpy as np
import pytest

from model.evaluate import calibration_bins, expected_calibration_error


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

"""Drift: a user's inputs as bins, the shares of a set of users, and the PSI against a reference."""

import dataclasses

import pytest

from model import drift
from model.artifact import load
from model.data import dataset_paths, load_dataset
from model.features import columns_of
from model.predict import score
from tests.fixtures.keys import session_trusted


def bins_of(predictor, user: dict) -> dict[str, str]:
    (prediction,) = predictor.predict([user])
    return dict(zip(drift.FEATURE_NAMES, prediction.bins, strict=True))


@pytest.fixture(scope="module")
def predictor(sample_model_dir):
    return load(sample_model_dir, session_trusted()).predictor


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({}, {"age": "missing", "name_length": "missing", "company": "missing", "title": "none"}),
        ({"age": 17.9}, {"age": "0-17"}),
        ({"age": 18}, {"age": "18-24"}),
        ({"age": 65}, {"age": "65+"}),
        ({"name": "Ann Lee"}, {"name_length": "1-9", "first_name": "known", "title": "none"}),
        ({"name_length": 12}, {"name_length": "10-12", "first_name": "missing"}),
        ({"name": "Mrs Jordan Smith"}, {"title": "gendered", "first_name": "known"}),
        ({"name": "Dr. Ann Lee"}, {"title": "other"}),
        ({"title": "Frau", "name": "Ann Lee"}, {"title": "gendered"}),
        ({"title": "Captain"}, {"title": "other"}),
        ({"name": "Xqzwv Lee"}, {"first_name": "unknown"}),
        ({"company": "4You"}, {"company": "4You"}),
        ({"company": "Initech"}, {"company": "other"}),
        ({"travel_count": 0, "hotel_nights": 0}, {"travel_count": "0", "hotel_nights": "0"}),
        (
            {"travel_count": 11, "avg_flight_price": 999.5},
            {"travel_count": "11+", "avg_flight_price": "500-999"},
        ),
        ({"hotel_nights": 41}, {"hotel_nights": "41+", "travel_count": "missing"}),
    ],
)
def test_a_user_falls_in_one_bin_per_feature(predictor, user, expected):
    seen = bins_of(predictor, user)
    assert set(seen) == set(drift.FEATURES)
    assert all(seen[feature] in drift.FEATURES[feature] for feature in seen)
    assert {feature: seen[feature] for feature in expected} == expected


def test_bins_never_hold_a_name(predictor):
    seen = bins_of(predictor, {"name": "Zebulon Quetzalcoatl", "title": "Mr"})
    assert not any("zebulon" in value.lower() or "quetzal" in value.lower() for value in seen.values())


def test_shares_list_every_bin_and_sum_to_one(predictor):
    users = [{"age": 30, "name": "Ann Lee"}, {"age": 70}, {"company": "4You"}, {}]
    counts = drift.BinCounts().add(predictor.score(columns_of(users)).bins)
    shares = counts.shares()
    assert counts.users == 4
    for feature, values in drift.FEATURES.items():
        assert list(shares[feature]) == list(values)
        assert sum(shares[feature].values()) == pytest.approx(1.0)
    assert shares["age"] == pytest.approx(
        {**dict.fromkeys(drift.FEATURES["age"], 0.0), "25-34": 0.25, "65+": 0.25, "missing": 0.5}
    )


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    reference = {"18-24": 0.2, "25-34": 0.5, "35-44": 0.3}
    assert drift.psi(reference, reference) == pytest.approx(0.0)
    assert drift.psi({"18-24": 0.22, "25-34": 0.48, "35-44": 0.3}, reference) < 0.01
    assert drift.psi({"18-24": 1.0}, reference) > drift.PSI_ALERT
    # An empty bin on either side is floored, not infinite.
    assert drift.psi({"18-24": 0.5, "25-34": 0.5}, reference) < 10


def test_the_model_records_its_training_users_as_the_reference(sample_model_dir):
    loaded = load(sample_model_dir, session_trusted())
    reference = loaded.metadata["drift_reference"]
    assert reference["users"] > 0 and 0 < reference["female_share"] < 1
    assert set(reference["features"]) == set(drift.FEATURES)
    for feature, shares in reference["features"].items():
        assert set(shares) == set(drift.FEATURES[feature])
        assert sum(shares.values()) == pytest.approx(1.0)


def test_the_training_users_scored_as_a_batch_have_not_drifted(sample_model_dir, sample_data_dir):
    loaded = load(sample_model_dir, session_trusted())
    dataset = load_dataset(*dataset_paths(sample_data_dir).values())
    labelled = dataclasses.replace(dataset, users=dataset.users[dataset.users["gender"] != "none"])
    measured = drift.drift(score(labelled, loaded).bins, loaded.metadata["drift_reference"])
    assert measured["users"] == loaded.metadata["drift_reference"]["users"]
    assert max(measured["psi"].values()) == pytest.approx(0.0, abs=1e-12)


def test_counts_sent_as_flat_rows_add_up_to_the_counts_of_all_the_users(predictor, sample_data_dir):
    users = load_dataset(dataset_paths(sample_data_dir)["users"]).users
    bins = predictor.score(columns_of(users.to_dict("records"))).bins
    whole = drift.BinCounts().add(bins)
    halves = [drift.BinCounts().add(part).flat() for part in (bins[:150], bins[150:])]
    merged = drift.BinCounts()
    for flat in halves:
        merged.add_flat(flat)
    assert merged.users == whole.users == len(users)
    assert merged.shares() == whole.shares()
    assert merged.flat() == whole.flat() != drift.BinCounts().add(bins[:150]).flat()

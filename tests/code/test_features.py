"""Code behaviour of the shared feature path."""

import numpy as np
import pandas as pd
import pytest

from model.data import feature_columns
from model.features import FEATURE_NAMES, FeatureBuilder, char_ngrams, to_matrix, without_names
from model.names import parse_name
from tests.fixtures.data import records_to_columns

PRIOR = {"mary": (5.0, 12.0), "john": (-5.0, 12.0)}


def fitted_builder() -> FeatureBuilder:
    columns = records_to_columns(
        [{"name": n} for n in ["Mary A", "Maria B", "John C", "Jon D", "Anna E", "Mark F"]]
    )
    return FeatureBuilder(PRIOR).fit(columns, np.array([1, 1, 0, 0, 1, 0]))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Roy Braun", (None, "roy")),
        ("Dr. Jane Smith", ("dr", "jane")),
        ("MRS ann lee", ("mrs", "ann")),
        ("", (None, None)),
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


def test_char_ngrams_mark_start_and_end():
    grams = char_ngrams("ann")
    assert "^a" in grams and "nn$" in grams and "^ann" in grams and "^ann$" not in grams


def test_record_and_table_rows_get_identical_features():
    # A table marks a missing value with NaN or None; a JSON instance leaves the field out.
    frame = pd.DataFrame(
        {
            "name": ["Mary Stone", "Zed Quux", None],
            "age": [33, np.nan, 40],
            "company": ["4You", "Nowhere Inc", None],
            "travel_count": [3.0, 0.0, np.nan],
            "hotel_nights": [np.nan, 2.0, np.nan],
        }
    )
    instances = [
        {field: value for field, value in user.items() if value is not None and value == value}
        for user in frame.to_dict("records")
    ]
    builder = fitted_builder()
    from_table = builder.transform(feature_columns(frame))
    from_instances = to_matrix(builder.rows(instances))  # what serving scores
    one_by_one = np.vstack([to_matrix(builder.rows([instance])) for instance in instances])
    np.testing.assert_array_equal(from_table, from_instances)
    np.testing.assert_array_equal(from_table, one_by_one)


def test_every_input_may_be_absent():
    features = fitted_builder().transform(
        records_to_columns([{}, {"age": 30, "company": "4You", "name_length": 12}])
    )
    row = dict(zip(FEATURE_NAMES, features[1], strict=True))
    assert features.shape == (2, len(FEATURE_NAMES))
    assert np.isfinite(features).all()
    assert row["has_name"] == 0 and row["name_length"] == 12 and row["age"] == 30 and row["company=4You"] == 1
    assert (
        row["travel_missing"] == 1 and dict(zip(FEATURE_NAMES, features[0], strict=True))["age_missing"] == 1
    )


def test_prior_and_title_features():
    features = fitted_builder().transform(
        records_to_columns([{"name": "Mrs Mary Stone"}, {"name": "Xq Y", "title": "Mr"}])
    )
    mary, unknown = (dict(zip(FEATURE_NAMES, row, strict=True)) for row in features)
    assert mary["prior_log_odds"] == 5.0 and mary["prior_known"] == 1 and mary["title_gender"] == 1
    assert unknown["prior_known"] == 0 and unknown["title_gender"] == -1


def test_missing_numbers_take_the_training_mean():
    columns = records_to_columns(
        [{"name": "Mary A", "age": 20, "travel_count": 4}, {"name": "John B", "age": 40}]
    )
    builder = FeatureBuilder(PRIOR).fit(columns, np.array([1, 0]))
    [row] = builder.transform(records_to_columns([{"company": "4You"}]))
    features = dict(zip(FEATURE_NAMES, row, strict=True))
    assert features["age"] == 30
    assert features["age_missing"] == 1
    assert features["travel_count"] == 4
    assert features["name_length"] == 6


def test_unknown_company_is_an_unseen_category():
    features = fitted_builder().transform(records_to_columns([{"company": "Brand New Ltd"}]))
    company_columns = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("company=")]
    assert not features[0, company_columns].any()


def test_learned_tables_are_cross_fitted():
    # A first name seen once: in transform it carries its own label, in fit_transform it must not.
    columns = records_to_columns(
        [{"name": f"{n} X"} for n in ["Uniquea", "Bob", "Bob", "Bob", "Bo", "Bobby"] * 5]
    )
    labels = np.array([1, 0, 0, 0, 0, 0] * 5)
    builder = FeatureBuilder({})
    cross_fitted = builder.fit_transform(columns, labels)
    in_sample = builder.transform(columns)
    column = FEATURE_NAMES.index("first_name_log_odds")
    assert not np.allclose(cross_fitted[:, column], in_sample[:, column])


def test_without_names_keeps_the_length_only():
    columns = records_to_columns([{"name": "Mary Stone", "title": "Mrs", "age": 3}])
    nameless = without_names(columns)
    assert "name" not in nameless and "title" not in nameless
    assert nameless["name_length"][0] == len("Mary Stone") and nameless["age"][0] == 3


def test_refitting_refreshes_the_values_of_unknown_fields():
    builder = FeatureBuilder(PRIOR)
    for mean_age in (20, 60):
        columns = records_to_columns(
            [{"name": "Mary A", "age": mean_age}, {"name": "John B", "age": mean_age}]
        )
        builder.fit(columns, np.array([1, 0]))
        [row] = builder.transform(records_to_columns([{"company": "4You"}]))
        assert row[FEATURE_NAMES.index("age")] == mean_age


def test_no_rows_and_folds_without_rows():
    # Two training rows leave some of the five cross-fitting folds empty.
    columns = records_to_columns([{"name": "Mary A"}, {"name": "John B"}])
    builder = FeatureBuilder(PRIOR)
    assert builder.fit_transform(columns, np.array([1, 0])).shape == (2, len(FEATURE_NAMES))
    assert builder.transform(records_to_columns([])).shape == (0, len(FEATURE_NAMES))

"""Code behaviour of the shared feature path."""

import numpy as np
import pandas as pd
import pytest

from model.data import feature_columns
from model.features import (
    FEATURE_NAMES,
    TITLE_GENDERS,
    FeatureBuilder,
    char_ngrams,
    columns_of,
    without_names,
)
from model.names import NamePrior, ParsedName, parse_name

PRIOR = NamePrior(
    pooled={"mary": 5.0, "john": -5.0, "jose": -6.0, "zoe": 6.0, "andrea": 2.0},
    by_country={"IT": {"andrea": -7.0}},
    endings={"a": 1.5, "o": -1.5},
)


def features_of(builder: FeatureBuilder, user: dict) -> np.ndarray:
    """One user's feature row, as a request of that one user gets it."""
    return builder.transform(columns_of([user]))[0]


def title_genders(builder: FeatureBuilder, users: list[dict]) -> list[str | None]:
    return [TITLE_GENDERS[i] for i in builder.encode(columns_of(users)).title_gender]


def fitted_builder() -> FeatureBuilder:
    columns = columns_of([{"name": n} for n in ["Mary A", "Maria B", "John C", "Jon D", "Anna E", "Mark F"]])
    return FeatureBuilder(PRIOR).fit(columns, np.array([1, 1, 0, 0, 1, 0]))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Roy Braun", ParsedName(None, "roy", 9, False)),
        ("Dr. Jane Smith", ParsedName(None, "jane", 14, True)),
        ("MRS ann lee", ParsedName("female", "ann", 11, True)),
        ("Prof. Dr. Herr Hans Meier", ParsedName("male", "hans", 25, True)),
        ("Sig.ra Giulia Rossi", ParsedName("female", "giulia", 19, True)),
        ("Sr. Juan Pérez", ParsedName("male", "juan", 14, True)),
        ("Sra Ana Pérez", ParsedName("female", "ana", 13, True)),
        ("srta. Ana Pérez", ParsedName("female", "ana", 15, True)),
        ("M. Jean Dupont", ParsedName("male", "jean", 14, True)),
        ("Mlle Léa Martin", ParsedName("female", "lea", 15, True)),
        ("Mrs", ParsedName("female", None, 3, True)),
        ("", ParsedName(None, None, 0)),
        ("   ", ParsedName(None, None, 0)),
        ("\u200b\u2060", ParsedName(None, None, 0)),
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize(
    "spelling",
    [
        "Jose Garcia",
        "José García",
        "JOSÉ GARCÍA",
        "Jose\u0301 Garci\u0301a",  # decomposed accents
        "  José   García ",
        "\u202eJosé\u200b García\u200f",
        "Ｊｏｓé García",  # full-width letters
    ],
)
def test_spellings_of_one_name_get_the_same_features(spelling):
    builder = fitted_builder()
    reference = features_of(builder, {"name": "Jose Garcia", "age": 30})
    np.testing.assert_array_equal(features_of(builder, {"name": spelling, "age": 30}), reference)


def test_field_order_does_not_matter():
    builder = fitted_builder()
    user = {"name": "Zoë Saldana", "country": "US", "age": 44, "company": "4You", "title": "Ms"}
    encoded = builder.encode(columns_of([user]))
    reversed_order = builder.encode(columns_of([dict(reversed(user.items()))]))
    for given, reordered in zip(encoded, reversed_order, strict=True):
        np.testing.assert_array_equal(given, reordered)


@pytest.mark.parametrize("blank", ["   ", "\u200b", "\u202e \u200f", "\u3000"])
def test_a_name_blank_once_cleaned_counts_as_no_name(blank):
    builder = fitted_builder()
    np.testing.assert_array_equal(
        features_of(builder, {"name": blank, "age": 30}), features_of(builder, {"age": 30})
    )


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
    from_instances = builder.transform(columns_of(instances))  # what serving scores
    one_by_one = np.vstack([features_of(builder, instance) for instance in instances])
    np.testing.assert_array_equal(from_table, from_instances)
    np.testing.assert_array_equal(from_table, one_by_one)


def test_every_input_may_be_absent():
    features = fitted_builder().transform(columns_of([{}, {"age": 30, "company": "4You", "name_length": 12}]))
    row = dict(zip(FEATURE_NAMES, features[1], strict=True))
    assert features.shape == (2, len(FEATURE_NAMES))
    assert np.isfinite(features).all()
    assert row["has_name"] == 0 and row["name_length"] == 12 and row["age"] == 30 and row["company=4You"] == 1
    assert (
        row["travel_missing"] == 1 and dict(zip(FEATURE_NAMES, features[0], strict=True))["age_missing"] == 1
    )


def test_prior_features_use_the_country_where_it_has_statistics():
    users = [
        {"name": "Mary Stone"},
        {"name": "Andrea Rossi"},
        {"name": "Andrea Rossi", "country": "IT"},
        {"name": "Andrea Rossi", "country": "FR"},  # no statistics of its own: pooled
        {"name": "Xqza Y"},  # unlisted: its ending
        {"name": "Xq Y"},  # unlisted, no known ending
    ]
    rows = [
        dict(zip(FEATURE_NAMES, row, strict=True)) for row in fitted_builder().transform(columns_of(users))
    ]
    assert [(r["prior_log_odds"], r["prior_known"]) for r in rows] == [
        (5.0, 1.0),
        (2.0, 1.0),
        (-7.0, 1.0),
        (2.0, 1.0),
        (1.5, 0.0),
        (0.0, 0.0),
    ]


def test_titles_are_not_features_but_travel_beside_them():
    builder = fitted_builder()
    users = [
        {"name": "Mrs Mary Stone"},
        {"name": "Xq Y", "title": "Mr"},
        {"title": "Frau"},
        {"name": "Mary Stone"},
    ]
    assert title_genders(builder, users) == ["female", "male", "female", None]
    # The title field wins over a title in the name, when it is a title.
    users = [{"name": "Mrs Mary Stone", "title": "Dr"}, {"name": "Mrs Mary Stone", "title": "Captain"}]
    assert title_genders(builder, users) == [None, "female"]
    # Titles of one length: the features cannot tell Mrs from Dr. or Mr. (or no title) from Herr.
    for one, other in (("Mrs Mary Stone", "Dr. Mary Stone"), ("Herr Mary Stone", "Miss Mary Stone")):
        np.testing.assert_array_equal(
            features_of(builder, {"name": one}), features_of(builder, {"name": other})
        )


def test_missing_numbers_take_the_training_mean():
    columns = columns_of([{"name": "Mary A", "age": 20, "travel_count": 4}, {"name": "John B", "age": 40}])
    builder = FeatureBuilder(PRIOR).fit(columns, np.array([1, 0]))
    [row] = builder.transform(columns_of([{"company": "4You"}]))
    features = dict(zip(FEATURE_NAMES, row, strict=True))
    assert features["age"] == 30
    assert features["age_missing"] == 1
    assert features["travel_count"] == 4
    assert features["name_length"] == 6


def test_unknown_company_is_an_unseen_category():
    features = fitted_builder().transform(columns_of([{"company": "Brand New Ltd"}]))
    company_columns = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("company=")]
    assert not features[0, company_columns].any()


def test_learned_tables_are_cross_fitted():
    # A first name seen once: in transform it carries its own label, in fit_transform it must not.
    columns = columns_of([{"name": f"{n} X"} for n in ["Uniquea", "Bob", "Bob", "Bob", "Bo", "Bobby"] * 5])
    labels = np.array([1, 0, 0, 0, 0, 0] * 5)
    builder = FeatureBuilder(NamePrior({}, {}, {}))
    cross_fitted = builder.fit_transform(columns, labels)
    in_sample = builder.transform(columns)
    column = FEATURE_NAMES.index("first_name_log_odds")
    assert not np.allclose(cross_fitted[:, column], in_sample[:, column])


def test_without_names_keeps_the_length_only():
    columns = columns_of([{"name": "Mary Stone", "title": "Mrs", "age": 3}])
    nameless = without_names(columns)
    assert "name" not in nameless and "title" not in nameless
    assert nameless["name_length"][0] == len("Mary Stone") and nameless["age"][0] == 3


def test_refitting_refreshes_the_values_of_unknown_fields():
    builder = FeatureBuilder(PRIOR)
    for mean_age in (20, 60):
        columns = columns_of([{"name": "Mary A", "age": mean_age}, {"name": "John B", "age": mean_age}])
        builder.fit(columns, np.array([1, 0]))
        [row] = builder.transform(columns_of([{"company": "4You"}]))
        assert row[FEATURE_NAMES.index("age")] == mean_age


def test_no_rows_and_folds_without_rows():
    # Two training rows leave some of the five cross-fitting folds empty.
    columns = columns_of([{"name": "Mary A"}, {"name": "John B"}])
    builder = FeatureBuilder(PRIOR)
    assert builder.fit_transform(columns, np.array([1, 0])).shape == (2, len(FEATURE_NAMES))
    assert builder.transform(columns_of([])).shape == (0, len(FEATURE_NAMES))

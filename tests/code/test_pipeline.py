"""The fitted predictor scores exactly what its estimator would, on every path it takes."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from model.features import TITLE_GENDERS, FeatureBuilder, columns_of
from model.names import NamePrior
from model.pipeline import TITLE_PROBABILITY, GenderPredictor, title_decides

PRIOR = NamePrior({"mary": 5.0, "john": -5.0, "anna": 4.0}, {}, {})
# Women travel more and men stay longer in hotels here, so the two counts pull in opposite directions.
USERS = [
    {"name": "Mary Stone", "age": 31, "company": "4You", "travel_count": 3, "hotel_nights": 0},
    {"name": "John Smith", "age": 45, "company": "Acme Factory", "travel_count": 0, "hotel_nights": 7},
    {"name": "Anna Lee", "age": 27, "travel_count": 5, "hotel_nights": 1, "avg_hotel_spend": 150.0},
    {"name": "Mark Twain", "age": 52, "company": "Wonka Company", "travel_count": 1, "hotel_nights": 4},
    {"name": "Jane Roe", "age": 38, "travel_count": 4, "share_premium": 0.5},
    {"name": "Paul Poe", "age": 61, "company": "Umbrella LTDA", "hotel_nights": 9},
] * 5
LABELS = np.array([1, 0, 1, 0, 1, 0] * 5)
REQUESTS = [
    {"age": 30, "company": "4You", "name_length": 12},
    {"name": "Dr Mary Quux"},
    {"name": "Ann Quux", "hotel_nights": 2},
    # At the schema's bounds, far outside the training data: scores of about +1e6 and -5e5, where a naive
    # logistic overflows on one side.
    {"travel_count": 1_000_000},
    {"hotel_nights": 1_000_000},
]


def fitted(estimator) -> tuple[GenderPredictor, np.ndarray]:
    """A predictor around `estimator` fitted on USERS, and the estimator's own P(female) for REQUESTS."""
    builder = FeatureBuilder(PRIOR)
    matrix, labels = builder.training_matrix(columns_of(USERS), LABELS)
    estimator.fit(matrix, labels)
    expected = estimator.predict_proba(builder.transform(columns_of(REQUESTS)))[:, 1]
    return GenderPredictor(builder, estimator, "candidate"), expected


def each_estimator():
    """Parametrize over both kinds of estimator the predictor handles, fresh instances each time."""
    return pytest.mark.parametrize(
        "estimator",
        [
            Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(C=100.0))]),
            RandomForestClassifier(n_estimators=20, random_state=0),
        ],
        ids=["logistic regression, kept as weights", "random forest"],
    )


@each_estimator()
def test_predictor_scores_what_the_estimator_scores(estimator):
    predictor, expected = fitted(estimator)
    female = predictor.female_probability(REQUESTS)
    np.testing.assert_allclose(female, expected, rtol=0, atol=1e-12)
    assert all(0.0 <= p <= 1.0 for p in female)


def test_a_linear_model_is_kept_without_its_estimator():
    predictor, _ = fitted(Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]))
    assert predictor.estimator is None


def test_predictions_name_the_likelier_gender_with_its_probability():
    predictor, expected = fitted(
        Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(C=100.0))])
    )
    for prediction, female in zip(predictor.predict(REQUESTS), expected, strict=True):
        assert prediction.gender == ("female" if female >= 0.5 else "male")
        assert prediction.probability == pytest.approx(max(female, 1.0 - female), abs=1e-12)


@pytest.mark.parametrize(
    ("model_says", "title", "expected"),
    [
        (0.2, "female", TITLE_PROBABILITY),  # the title decides
        (0.999, "female", 0.999),  # and never makes the answer less sure of its own gender
        (0.8, "male", 1 - TITLE_PROBABILITY),
        (0.0001, "male", 0.0001),
        (0.3, None, 0.3),
    ],
)
def test_a_gendered_title_decides(model_says, title, expected):
    [decided] = title_decides(np.array([model_says]), np.array([TITLE_GENDERS.index(title)]))
    assert decided == pytest.approx(expected)


def test_the_predictor_applies_titles_after_the_model():
    predictor, _ = fitted(RandomForestClassifier(n_estimators=20, random_state=0))
    users = [{"name": "John Smith"}, {"name": "Mrs John Smith"}, {"name": "John Smith", "title": "Mrs"}]
    plain, in_name, in_field = predictor.female_probability(users)
    assert plain < 0.5
    assert in_name == in_field == TITLE_PROBABILITY
    [mr_mary] = predictor.predict([{"name": "Mr Mary Stone"}])
    assert mr_mary.gender == "male" and mr_mary.probability >= TITLE_PROBABILITY


@each_estimator()
def test_a_temperature_scales_the_log_odds_and_keeps_every_gender(estimator):
    plain, _ = fitted(estimator)
    tempered = GenderPredictor(plain.features, estimator, "candidate", temperature=2.0)
    for before, after in zip(
        plain.female_probability(REQUESTS), tempered.female_probability(REQUESTS), strict=True
    ):
        if before in (0.0, 1.0):
            assert after == before
            continue
        log_odds = np.log(before / (1 - before))
        assert np.log(after / (1 - after)) == pytest.approx(2.0 * log_odds, abs=1e-6)
        assert (after >= 0.5) == (before >= 0.5)

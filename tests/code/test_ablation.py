"""The feature ablation of the report: input blocks added one at a time, through the one feature path."""

import numpy as np

from model.contract import TRAVEL_FIELDS
from model.features import is_missing
from model.names import NamePrior
from model.train import CandidateResult, Prepared, ablation, ablation_columns

# A prior that lists no first name of the users below: their names carry no gender.
PRIOR = NamePrior({"anna": 3.0}, {}, {})
N_USERS = 300


def users(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Users whose first names say nothing of their gender, whose age says some of it (women are
    younger on the whole) and whose hotel nights say the rest (women stay longer, without overlap)."""
    female = rng.random(N_USERS) < 0.5
    columns = {
        "name": np.array([f"Qx{i % 60}v Berg" for i in range(N_USERS)], dtype=object),
        "company": rng.choice(np.array(["4You", "Acme Factory"], dtype=object), N_USERS),
        "age": np.where(female, rng.integers(20, 50, N_USERS), rng.integers(35, 65, N_USERS)).astype(float),
        **{name: rng.random(N_USERS) for name in TRAVEL_FIELDS},
    }
    columns["hotel_nights"] = np.where(female, rng.integers(20, 40, N_USERS), rng.integers(0, 15, N_USERS))
    return columns, female.astype(int)


def test_each_step_blanks_every_later_block_for_every_user():
    columns, _ = users(np.random.default_rng(0))
    steps = dict(ablation_columns(columns))
    assert list(steps) == ["names alone", "+ age and company", "+ travel aggregates"]
    for blocks, blanked in (
        ("names alone", ("age", "company", *TRAVEL_FIELDS)),
        ("+ age and company", TRAVEL_FIELDS),
        ("+ travel aggregates", ()),
    ):
        step = steps[blocks]
        assert set(step) == set(columns)
        for field, values in step.items():
            if field in blanked:
                assert all(is_missing(value) for value in values), (blocks, field)
            else:
                assert values is columns[field], (blocks, field)


def test_users_without_travel_get_no_travel_step():
    columns, _ = users(np.random.default_rng(0))
    without_travel = {field: values for field, values in columns.items() if field not in TRAVEL_FIELDS}
    assert [blocks for blocks, _ in ablation_columns(without_travel)] == ["names alone", "+ age and company"]


def test_each_block_earns_what_its_fields_say_of_the_gender():
    columns, labels = users(np.random.default_rng(1))
    prepared = Prepared(
        dataset=None,
        columns=columns,
        labels=labels,
        prior=PRIOR,
        people=None,
        folds={},
        seed=0,
        all_columns=columns,
        all_labels=labels,
        search={},
    )
    candidate = CandidateResult("logistic_regression", {"C": 1.0}, metrics={})
    rows = ablation(prepared, candidate)
    accuracy = {row["blocks"]: row["accuracy"] for row in rows}
    assert accuracy["names alone"] < 0.65  # a coin flip, give or take
    assert 0.65 < accuracy["+ age and company"] < 0.9
    assert accuracy["+ travel aggregates"] > 0.97
    assert all(0.0 <= row["roc_auc"] <= 1.0 for row in rows)

"""One input contract (model.contract): the API's request validator, the MLflow model's input type and
the users.csv loader accept and refuse the same values, field by field."""

import orjson
import pydantic
import pytest

from jobs.pyfunc_model import UserInput
from model import contract
from model.data import USERS_COLUMNS, DataError, load_users
from service.schema import request_adapter

API = request_adapter(max_instances=10)


def api_accepts(user: dict) -> bool:
    try:
        API.validate_json(orjson.dumps(user))  # as the API validates the raw body
    except pydantic.ValidationError:
        return False
    return True


def mlflow_accepts(user: dict) -> bool:
    try:
        UserInput.model_validate(user, strict=True)  # as MLflow validates a type-hinted model's input
    except pydantic.ValidationError:
        return False
    return True


def cases(field: contract.Field) -> list[tuple[object, bool]]:
    """(value, accepted) pairs at and just past the field's bounds, and of the wrong type."""
    if field.kind is str:
        if field.pattern:  # its pattern fixes the length: no "A" or 200 "A"s to try
            example = field.example
            return [
                (example, True),
                ("", False),
                (example + example[-1], False),
                (example.lower(), False),
                (example[:-1] + "\x00", False),
            ]
        longest = "A" * field.max_length
        return [
            ("A", True),
            (longest, True),
            ("", False),
            (longest + "A", False),
            # Control characters are refused; format characters (bidi marks, zero-width) are text.
            ("Ann\x00 Lee", False),
            ("Ann\x7f", False),
            ("\x85Ann", False),
            ("\u202eAnn Lee\u200b", True),
        ]
    wrong_type = [(str(field.minimum), False)]
    if field.kind is int:
        whole = int(field.minimum)
        return [(whole, True), (float(whole), True), (whole + 0.5, False), (whole - 1, False), *wrong_type]
    return [(field.minimum, True), (field.maximum, True), (field.maximum * 1.01 + 1, False), *wrong_type]


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [(field.name, value, accepted) for field in contract.FIELDS for value, accepted in cases(field)],
)
def test_api_and_mlflow_model_agree_on_every_field(field, value, accepted):
    user = {field: value}
    assert api_accepts(user) is accepted
    assert mlflow_accepts(user) is accepted


def test_both_refuse_an_unknown_field_and_accept_any_subset():
    assert not api_accepts({"age": 30, "shoe_size": 38})
    assert not mlflow_accepts({"age": 30, "shoe_size": 38})
    for user in ({"age": 30, "company": "4You", "name_length": 12}, {"hotel_nights": 3}):
        assert api_accepts(user) and mlflow_accepts(user)


def test_the_mlflow_input_type_declares_exactly_the_contract():
    assert tuple(UserInput.model_fields) == contract.FIELD_NAMES
    assert not any(field.is_required() for field in UserInput.model_fields.values())


CONTRACT_COLUMNS = [c.name for c in USERS_COLUMNS if c.name in contract.FIELD_BY_NAME]
ROW = {"code": "0", "company": "4You", "name": "Roy Braun", "gender": "male", "age": "21", "country": "FR"}


def refusals(field: contract.Field) -> list[str]:
    """Values of a users.csv cell that the contract refuses for the field."""
    if field.kind is not str:
        return [str(int(field.maximum) + 1)]
    too_long = "A" * (field.max_length + 1)
    return [too_long, ROW[field.name][:-1] + "\x00", ROW[field.name] + "\x1b"]


@pytest.mark.parametrize("column", CONTRACT_COLUMNS)
def test_users_csv_refuses_what_the_contract_refuses(tmp_path, column):
    path = tmp_path / "users.csv"
    for value in (ROW[column], *refusals(contract.FIELD_BY_NAME[column])):
        path.write_text(",".join(ROW) + "\n" + ",".join({**ROW, column: value}.values()))
        if value == ROW[column]:
            assert len(load_users(path)) == 1
            continue
        with pytest.raises(DataError, match=f"row 1 \\(line 2\\), column '{column}'"):
            load_users(path)
        assert api_accepts({column: value}) is False
        assert mlflow_accepts({column: value}) is False


def test_a_control_character_is_named_the_same_way_everywhere(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text(",".join(ROW) + "\n" + ",".join({**ROW, "name": "Ann\x00 Lee"}.values()))
    with pytest.raises(DataError) as refused:
        load_users(path)
    assert str(refused.value).endswith("column 'name': control character U+0000 is not allowed in text")
    with pytest.raises(pydantic.ValidationError) as invalid:
        API.validate_json(orjson.dumps({"name": "Ann\x00 Lee"}))
    [error] = invalid.value.errors()
    assert error["type"] == "control_character" and error["loc"][-1] == "name"
    assert error["msg"] == "control character U+0000 is not allowed in text"

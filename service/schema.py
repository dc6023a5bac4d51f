"""Request and response shapes: pydantic types compiled once, also the source of the OpenAPI schemas.

Validation is strict (no coercion of ``"30"`` to 30, no NaN or infinity, unknown fields rejected) and runs
straight on the request bytes with ``TypeAdapter.validate_json``, so a request is parsed exactly once.
"""

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from model.features import AGE_RANGE, MAX_NAME_CHARS

MAX_TITLE_LENGTH = 20
MAX_COMPANY_LENGTH = 100
# Bounds keep values inside what float64 arithmetic in the model handles without overflow.
MAX_COUNT = 1_000_000
MAX_AMOUNT = 1e9

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

UNKNOWN_COMPANY_NOTE = (
    "A company outside the training set is accepted and scored as an unseen category "
    "(the model falls back to the other features)."
)


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 12.0 as an integer; accept it as 12. Strings and 12.5 still fail as not integers.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT)]
# Bounds before the validator, so that they reach the JSON schema as minimum and maximum.
Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_whole_number)]
Share = Annotated[float, Field(ge=0, le=1)]


class UserFeatures(TypedDict, total=False):
    """One user. Every field is optional (omit what you do not know, `null` is not accepted),
    but at least one must be given."""

    __pydantic_config__ = ConfigDict(**STRICT, json_schema_extra={"minProperties": 1})

    name: Annotated[
        str,
        Field(min_length=1, max_length=MAX_NAME_CHARS, description="'First Last', optionally with a title"),
    ]
    title: Annotated[
        str, Field(min_length=1, max_length=MAX_TITLE_LENGTH, description="Mr, Mrs, Ms, Miss, Dr, Prof...")
    ]
    age: Annotated[float, Field(ge=AGE_RANGE[0], le=AGE_RANGE[1])]
    company: Annotated[
        str, Field(min_length=1, max_length=MAX_COMPANY_LENGTH, description=UNKNOWN_COMPANY_NOTE)
    ]
    name_length: Annotated[int, Field(ge=1, le=MAX_NAME_CHARS), BeforeValidator(_whole_number)]
    travel_count: Count
    avg_flight_price: Amount
    total_flight_spend: Amount
    avg_distance: Amount
    share_economic: Share
    share_premium: Share
    share_firstclass: Share
    hotel_nights: Count
    avg_hotel_spend: Amount


def _at_least_one_field(user: dict) -> dict:
    if not user:
        raise PydanticCustomError("empty_instance", "A user needs at least one field.")
    return user


User = Annotated[UserFeatures, AfterValidator(_at_least_one_field)]


def _request_kind(body: Any) -> str:
    # A routing key instead of a plain union: errors then name the fields of the shape the client meant.
    return "batch" if isinstance(body, dict) and "instances" in body else "single"


def request_adapter(max_instances: int) -> TypeAdapter:
    """The compiled validator of a /predict_gender body: one user, or ``{"instances": [...]}``.

    Both validate to plain dicts (the predictor's input) with no model objects in between.
    """

    class PredictBatch(TypedDict):
        """Several users scored in one call; predictions come back in the same order."""

        __pydantic_config__ = STRICT

        instances: Annotated[list[User], Field(min_length=1, max_length=max_instances)]

    return TypeAdapter(
        Annotated[
            Annotated[PredictBatch, Tag("batch")] | Annotated[User, Tag("single")],
            Discriminator(_request_kind),
        ]
    )


class Prediction(BaseModel):
    gender: Literal["female", "male"]
    probability: float = Field(ge=0, le=1, description="Probability of the predicted gender")
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model_version: str


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="Path to the offending field, e.g. ['instances', 3, 'age']")
    type: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class Error(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    model_version: str

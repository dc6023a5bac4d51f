"""Request and response shapes: pydantic types compiled once, also the source of the OpenAPI schemas.

Validation is strict (no coercion of ``"30"`` to 30, no NaN or infinity, unknown fields rejected) and runs
straight on the request bytes with ``TypeAdapter.validate_json``, so a request is parsed exactly once.
"""

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from model import contract

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

# One user: every field of the input contract, each optional.
UserFeatures = TypedDict(
    "UserFeatures",
    {field.name: contract.annotated_type(field) for field in contract.FIELDS},
    total=False,
)
UserFeatures.__doc__ = (
    "One user. Every field is optional (omit what you do not know, `null` is not accepted), "
    "but at least one must be given."
)
UserFeatures.__pydantic_config__ = ConfigDict(**STRICT, json_schema_extra={"minProperties": 1})


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

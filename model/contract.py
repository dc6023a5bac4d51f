"""The input contract: every field a user may have, with its type, bounds and meaning.

The one declaration the rest derives from: file validation (model.data), request validation and the
OpenAPI document (service.schema), the MLflow model's signature (jobs.pyfunc_model), the sample data
(model.sample_data) and the load test's traffic (load/locustfile.py). Every field is optional: a
client sends what it knows, and the model answers from that.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

KNOWN_COMPANIES = ("4You", "Acme Factory", "Wonka Company", "Monsters CYA", "Umbrella LTDA")
UNKNOWN_COMPANY_NOTE = (
    "A company outside the training set is accepted and scored as an unseen category "
    "(the model falls back to the other features)."
)
# Bounds keep every value inside what float64 arithmetic in the model handles without overflow.
MAX_COUNT = 1_000_000
MAX_AMOUNT = 1e9
# No text field holds a control character (C0, DEL, C1): in a name one is a corruption or an attack,
# never a spelling, and it would be scored as an unknown name.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
CONTROL_PATTERN = f"[{CONTROL_CHARACTERS}]"
NO_CONTROL_PATTERN = f"^[^{CONTROL_CHARACTERS}]*$"
_CONTROL = re.compile(CONTROL_PATTERN)
COUNTRY_PATTERN = "^[A-Z]{2}$"


@dataclass(frozen=True)
class Field:
    """One input field. Text has 1 to `max_length` characters, matches `pattern` when there is one and
    never holds a control character; a number lies in [minimum, maximum]."""

    name: str
    kind: type  # str, int or float
    description: str
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None
    example: str | None = None  # a valid value, for the documentation


def _amount(name: str, description: str) -> Field:
    return Field(name, float, description, 0, MAX_AMOUNT)


def _share(flight_type: str) -> Field:
    return Field(f"share_{flight_type}", float, f"Share of the user's flights in {flight_type} class", 0, 1)


FIELDS = (
    Field("name", str, "'First Last', optionally with a leading title", max_length=200),
    Field(
        "title", str, "Mr, Mrs, Ms, Miss, Dr, Prof...; wins over a title written in the name", max_length=20
    ),
    Field(
        "country",
        str,
        "ISO 3166-1 alpha-2 code of the user's country (FR, DE, ...), upper case; the first-name "
        "statistics of that country are used where there are some",
        max_length=2,
        pattern=COUNTRY_PATTERN,
        example="FR",
    ),
    Field("age", float, "Age in years", 0, 120),
    Field("company", str, f"The user's company. {UNKNOWN_COMPANY_NOTE}", max_length=100),
    Field("name_length", int, "Characters in the full name, for a client that keeps the name itself", 1, 200),
    Field("travel_count", int, "Round trips taken", 0, MAX_COUNT),
    _amount("avg_flight_price", "Mean price of a flight leg"),
    _amount("total_flight_spend", "Sum of the flight legs' prices"),
    _amount("avg_distance", "Mean distance of a flight leg, km"),
    _share("economic"),
    _share("premium"),
    _share("firstclass"),
    Field("hotel_nights", int, "Nights spent in hotels", 0, MAX_COUNT),
    _amount("avg_hotel_spend", "Mean total of a hotel stay"),
)
FIELD_BY_NAME = {field.name: field for field in FIELDS}
FIELD_NAMES = tuple(FIELD_BY_NAME)
NUMERIC_FIELDS = tuple(field.name for field in FIELDS if field.kind is not str)
# The aggregates of a user's trips (model.data computes them from the trip files).
TRAVEL_FIELDS = FIELD_NAMES[FIELD_NAMES.index("travel_count") :]


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 12.0 as an integer, and a table column with a gap holds its integers as
    # floats: accept 12.0 as 12. Strings and 12.5 still fail as not integers.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def control_character(text: str) -> str | None:
    """The first control character in `text`, or None."""
    found = _CONTROL.search(text)
    return found.group() if found else None


def control_character_message(character: str) -> str:
    return f"control character U+{ord(character):04X} is not allowed in text"


def _no_control_character(text: str | None) -> str | None:
    if text is not None and (character := control_character(text)) is not None:
        raise PydanticCustomError("control_character", control_character_message(character))
    return text


def annotated_type(field: Field, nullable: bool = False) -> Any:
    """The field as a pydantic type: its kind with its bounds, which also reach the JSON schema.

    `nullable` also admits None, as a table's missing cell; the bounds then apply to the value.
    """
    kind = field.kind | None if nullable else field.kind
    text = field.kind is str
    constraints = pydantic.Field(
        description=field.description,
        ge=field.minimum,
        le=field.maximum,
        min_length=1 if text else None,
        max_length=field.max_length,
        pattern=field.pattern,
        examples=[field.example] if field.example else None,
        # The control-character rule is checked in code, for a message that says what is wrong; the
        # schema still states it, for clients and generated tests.
        json_schema_extra={"pattern": NO_CONTROL_PATTERN} if text and not field.pattern else None,
    )
    if field.kind is int:
        # The bounds come before the validator, so that they reach the JSON schema as minimum/maximum.
        return Annotated[kind, constraints, BeforeValidator(_whole_number)]
    if text and not field.pattern:  # a pattern of its own admits no control character
        return Annotated[kind, constraints, AfterValidator(_no_control_character)]
    return Annotated[kind, constraints]

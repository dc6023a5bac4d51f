"""Load and validate the Voyage tables (users, hotels, flights), as CSV or Parquet files.

A CSV file is read as text first and checked column by column, a Parquet file's column types are
checked first and then its values the same way, so a bad file is refused with the file, row and
column named, instead of a pandas traceback or a silent coercion.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from model import contract
from model.features import Factorized

GENDERS = ("male", "female", "none")
FLIGHT_TYPES = ("economic", "premium", "firstClass")
DATE_FORMAT = "%m/%d/%Y"
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_FIELDS = frozenset(field.name for field in contract.FIELDS if field.kind is str)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "text", "date"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    max_chars: int | None = None
    pattern: str | None = None
    # An input field's text never holds a control character (model.contract).
    contract_text: bool = False
    # An empty cell is a missing value rather than an error.
    may_be_empty: bool = False

    @classmethod
    def of(cls, field: contract.Field, kind: str, may_be_empty: bool = False) -> "Column":
        """A users.csv column that holds an input field, with the contract's bounds and rules."""
        return cls(
            field.name,
            kind,
            field.minimum,
            field.maximum,
            max_chars=field.max_length,
            pattern=field.pattern,
            contract_text=field.kind is str,
            may_be_empty=may_be_empty,
        )


USERS_COLUMNS = (
    Column("code", "int", minimum=0),
    Column.of(contract.FIELD_BY_NAME["company"], "text"),
    Column.of(contract.FIELD_BY_NAME["name"], "text"),
    Column("gender", "text", choices=GENDERS),
    # Whole years in the file; the contract also takes fractional ages.
    Column.of(contract.FIELD_BY_NAME["age"], "int"),
    # Optional, and empty where a user's country is unknown.
    Column.of(contract.FIELD_BY_NAME["country"], "text", may_be_empty=True),
)
# Columns users.csv may leave out: unlabelled files have no gender, and most files no country.
OPTIONAL_USERS_COLUMNS = ("gender", "country")
HOTELS_COLUMNS = (
    Column("travelCode", "int", minimum=0),
    Column("userCode", "int", minimum=0),
    Column("name", "text"),
    Column("place", "text"),
    Column("days", "int", minimum=0),
    Column("price", "float", minimum=0),
    Column("total", "float", minimum=0),
    Column("date", "date"),
)
FLIGHTS_COLUMNS = (
    Column("travelCode", "int", minimum=0),
    Column("userCode", "int", minimum=0),
    Column("from", "text"),
    Column("to", "text"),
    Column("flightType", "text", choices=FLIGHT_TYPES),
    Column("price", "float", minimum=0),
    Column("time", "float", minimum=0),
    Column("distance", "float", minimum=0),
    Column("agency", "text"),
    Column("date", "date"),
)


class DataError(ValueError):
    """A refused input file; the message names the file, and the row and column when there is one."""

    def __init__(self, path: Path | str, message: str, row: int | None = None, column: str | None = None):
        self.reason, self.row, self.column = message, row, column
        where = f"{path}"
        if row is not None:
            # Row 1 is the first data row, on line 2 of the file (after the header).
            where += f", row {row} (line {row + 1})"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Dataset:
    users: pd.DataFrame
    hotels: pd.DataFrame | None = None
    flights: pd.DataFrame | None = None


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _convert_text(path: Path, raw: pd.Series, column: Column) -> pd.Series:
    """A text column as it is (None where an empty cell is allowed), refusing the first bad value.

    Each distinct value is checked once: a column repeats its values far more often than not. Text
    values are not quoted in the messages: a name is personal data.
    """
    codes, distinct = pd.factorize(raw)
    values = pd.Series(distinct)

    def first_row(bad: pd.Series) -> int | None:
        """The first row (1-based) whose value is bad, None when none is."""
        return _first_bad(bad.to_numpy(dtype=bool)[codes]) if bad.any() else None

    if column.contract_text and (row := first_row(values.str.contains(contract.CONTROL_PATTERN, regex=True))):
        character = contract.control_character(raw.iloc[row - 1])
        raise DataError(path, contract.control_character_message(character), row, column.name)
    empty = values.str.strip() == ""
    if not column.may_be_empty and (row := first_row(empty)):
        raise DataError(path, "empty value", row, column.name)
    given = ~empty
    if column.choices is not None and (row := first_row(given & ~values.isin(column.choices))):
        message = f"unknown value {raw.iloc[row - 1]!r}, expected one of {list(column.choices)}"
        raise DataError(path, message, row, column.name)
    if column.max_chars is not None and (row := first_row(given & (values.str.len() > column.max_chars))):
        raise DataError(path, f"longer than {column.max_chars} characters", row, column.name)
    if column.pattern is not None and (
        row := first_row(given & ~values.str.fullmatch(column.pattern).astype(bool))
    ):
        raise DataError(path, f"does not match {column.pattern}", row, column.name)
    return raw.where(given.to_numpy()[codes], None) if column.may_be_empty else raw


def _convert(path: Path, raw: pd.Series, column: Column) -> pd.Series:
    """Convert one text column (of a CSV file) to its type, refusing the first bad value with its row."""
    if column.kind == "text":
        return _convert_text(path, raw, column)
    if column.kind == "date":
        values = pd.to_datetime(raw, format=DATE_FORMAT, errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise DataError(path, f"not a MM/DD/YYYY date: {raw.iloc[row - 1]!r}", row, column.name)
        return values
    return _checked_number(path, _numbers(raw, column.kind), column, raw)


def _numbers(raw: pd.Series, kind: str) -> pd.Series:
    """Text as numbers (NaN where a value is not one): Arrow's parser, in one call, when every value
    is an integer (int) or a number (float); otherwise pandas', value by value, to find those that
    are not."""
    try:
        parsed = pc.cast(pa.array(raw), pa.int64() if kind == "int" else pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(raw, errors="coerce")
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=raw.index)


def _checked_number(path: Path, values: pd.Series, column: Column, raw: pd.Series) -> pd.Series:
    """A numeric column, refusing the first value that is missing, not finite, not whole where the
    column holds integers, or out of bounds; `raw` is what the file holds, for the message."""
    bad = (values.isna() | ~np.isfinite(values)).to_numpy()
    if column.kind == "int":
        bad = bad | (values.fillna(0.5).mod(1).to_numpy() != 0)
    if bad.any():
        row = _first_bad(bad)
        kind = "an integer" if column.kind == "int" else "a number"
        raise DataError(path, f"not {kind}: {raw.iloc[row - 1]!r}", row, column.name)
    for limit, outside, word in (
        (column.minimum, values < (column.minimum or 0), "below"),
        (column.maximum, values > (column.maximum or 0), "above"),
    ):
        if limit is not None and outside.any():
            row = _first_bad(outside.to_numpy())
            raise DataError(path, f"{values.iloc[row - 1]} is {word} the allowed {limit}", row, column.name)
    return values.astype("int64") if column.kind == "int" else values.astype("float64")


# The Parquet column types each kind of column takes.
PARQUET_TYPES = {
    "int": ("an integer type", pa.types.is_integer),
    "float": ("a numeric type", lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)),
    "text": ("a string type", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
    "date": ("a date or timestamp type", lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t)),
}


def _convert_parquet(path: Path, raw: pa.ChunkedArray, column: Column) -> pd.Series:
    """Check one Parquet column's type, then its values as a CSV column's are checked."""
    check_parquet_type(path, column, raw.type)
    if column.kind == "text":  # a null is an empty cell
        return _convert_text(path, raw.fill_null("").to_pandas(), column)
    if raw.null_count:
        raise DataError(path, "missing value", _first_bad(raw.is_null().to_numpy()), column.name)
    values = raw.to_pandas()
    if column.kind == "date":
        return pd.to_datetime(values)
    return _checked_number(path, values, column, values)


def _read_csv(path: Path, columns: tuple[Column, ...], use_threads: bool = True) -> dict[str, pd.Series]:
    """Every column as text, exactly as the file holds it (no value is read as missing)."""
    bad_rows: list[pa_csv.InvalidRow] = []

    def refuse(row: pa_csv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=use_threads),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=refuse),
            convert_options=pa_csv.ConvertOptions(
                column_types={column.name: pa.string() for column in columns},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        if bad_rows and bad_rows[0].number is None:  # parsed in parallel: read again to find the row
            return _read_csv(path, columns, use_threads=False)
        if bad_rows:  # the row's text is not quoted: it holds personal data
            row = bad_rows[0]
            message = f"{row.actual_columns} fields where the header has {row.expected_columns}"
            raise DataError(path, message, row.number - 1) from None  # number: its line
        reason = "empty file" if path.exists() and path.stat().st_size == 0 else str(error).strip()
        raise DataError(path, f"not a readable CSV file ({reason})") from None
    return {name: table[name].to_pandas() for name in table.column_names}


def _read_parquet(path: Path) -> dict[str, pa.ChunkedArray]:
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(path, f"not a readable Parquet file ({str(error).strip()})") from None
    return {name: table[name] for name in table.column_names}


def is_parquet(path: Path | str) -> bool:
    """Whether a table file is Parquet (by its extension); any other is read and written as CSV."""
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def check_header(path: Path | str, names: list[str], columns: tuple[Column, ...], optional: tuple[str, ...]):
    """Refuse a table whose column names are not `columns`; `optional` ones may be absent."""
    expected = [c.name for c in columns]
    missing = [name for name in expected if name not in names and name not in optional]
    if missing:
        raise DataError(path, f"missing columns {missing}; expected {expected}")
    extra = [name for name in names if name not in expected]
    if extra:
        raise DataError(path, f"unexpected columns {extra}; expected {expected}")


def check_parquet_type(path: Path | str, column: Column, kind: pa.DataType) -> None:
    """Refuse a Parquet column whose type cannot hold the column's values."""
    expected, accepts = PARQUET_TYPES[column.kind]
    if not accepts(kind):
        raise DataError(path, f"column type {kind}, expected {expected}", column=column.name)


def checked_values(path: Path | str, raw: dict, columns: tuple[Column, ...], parquet: bool) -> pd.DataFrame:
    """The columns of `raw` that `columns` lists, each value checked: Arrow columns of a Parquet file,
    or a CSV file's text exactly as it holds it."""
    convert = _convert_parquet if parquet else _convert
    return pd.DataFrame({c.name: convert(path, raw[c.name], c) for c in columns if c.name in raw})


def read_table(path: Path | str, columns: tuple[Column, ...], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet file and validate its header and every value; `optional` columns may be
    absent."""
    path = Path(path)
    parquet = is_parquet(path)
    raw = _read_parquet(path) if parquet else _read_csv(path, columns)
    check_header(path, list(raw), columns, optional)
    return checked_values(path, raw, columns, parquet)


def load_users(path: Path | str) -> pd.DataFrame:
    """users.csv; the gender column is optional so that unlabelled files can be scored, and so is
    the country column."""
    users = read_table(path, USERS_COLUMNS, optional=OPTIONAL_USERS_COLUMNS)
    duplicated = users["code"].duplicated().to_numpy()
    if duplicated.any():
        row = _first_bad(duplicated)
        raise DataError(path, f"duplicate user code {users['code'].iloc[row - 1]}", row, "code")
    return users


def _load_trips(path: Path | str, columns: tuple[Column, ...], users: pd.DataFrame) -> pd.DataFrame:
    trips = read_table(path, columns)
    orphan = (~trips["userCode"].isin(users["code"])).to_numpy()
    if orphan.any():
        row = _first_bad(orphan)
        raise DataError(path, f"userCode {trips['userCode'].iloc[row - 1]} has no user", row, "userCode")
    return trips


def load_dataset(
    users: Path | str, hotels: Path | str | None = None, flights: Path | str | None = None
) -> Dataset:
    user_table = load_users(users)
    return Dataset(
        users=user_table,
        hotels=_load_trips(hotels, HOTELS_COLUMNS, user_table) if hotels else None,
        flights=_load_trips(flights, FLIGHTS_COLUMNS, user_table) if flights else None,
    )


def dataset_paths(data_dir: Path | str) -> dict[str, Path | None]:
    """The users file of a data directory (required) and its hotels/flights files when present."""
    data_dir = Path(data_dir)
    paths: dict[str, Path | None] = {"users": data_dir / "users.csv"}
    if not paths["users"].exists():
        raise DataError(data_dir, "no users.csv in this directory")
    for name in ("hotels", "flights"):
        path = data_dir / f"{name}.csv"
        paths[name] = path if path.exists() else None
    return paths


def travel_aggregates(dataset: Dataset) -> pd.DataFrame:
    """Per-user travel features (the serving request's optional travel fields), indexed by user code."""
    out = pd.DataFrame(index=pd.Index(dataset.users["code"], name="code"))
    if dataset.flights is not None:
        flights = dataset.flights.groupby("userCode")
        out["travel_count"] = flights["travelCode"].nunique()
        out["avg_flight_price"] = flights["price"].mean()
        out["total_flight_spend"] = flights["price"].sum()
        out["avg_distance"] = flights["distance"].mean()
        shares = pd.crosstab(dataset.flights["userCode"], dataset.flights["flightType"], normalize="index")
        for flight_type in FLIGHT_TYPES:
            out[f"share_{flight_type.lower()}"] = shares.get(flight_type, 0.0)
    if dataset.hotels is not None:
        hotels = dataset.hotels.groupby("userCode")
        out["hotel_nights"] = hotels["days"].sum()
        out["avg_hotel_spend"] = hotels["total"].mean()
        if "travel_count" not in out:
            out["travel_count"] = hotels["travelCode"].nunique()
    # A user with no trip in a given file has zero of it, not an unknown amount.
    return out.fillna(0.0)


def users_with_travel(dataset: Dataset) -> pd.DataFrame:
    """users.csv with each user's travel aggregates (no columns added when there are no trip files)."""
    if dataset.hotels is None and dataset.flights is None:
        return dataset.users
    return dataset.users.join(travel_aggregates(dataset), on="code")


def feature_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A table's prediction fields as columns, the input of the shared feature path."""
    return {field: frame[field].to_numpy() for field in frame.columns if field in contract.FIELD_BY_NAME}


def factorized_columns(frame: pd.DataFrame) -> dict[str, np.ndarray | Factorized]:
    """feature_columns, with each text column factorized by pandas: the feature path then finds a
    large table's distinct names without hashing every row in Python."""
    columns = feature_columns(frame.drop(columns=[f for f in frame.columns if f in TEXT_FIELDS]))
    for field in TEXT_FIELDS.intersection(frame.columns):
        text = pa.array(frame[field], type=pa.string())
        if isinstance(text, pa.ChunkedArray):  # what an Arrow-backed column converts to
            text = text.combine_chunks()
        encoded = text.dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        codes = encoded.indices.fill_null(len(distinct)).to_numpy()  # a missing value: the None appended
        columns[field] = Factorized(codes, [*distinct, None])
    return columns

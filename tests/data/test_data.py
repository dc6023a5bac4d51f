"""Data behaviour: loaders accept the real and generated files and refuse bad ones precisely."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.data import DataError, load_dataset, load_users, travel_aggregates
from model.exit_codes import ExitCode
from tests.fixtures.models import retrain

USERS_HEADER = "code,company,name,gender,age\n"
GOOD_USERS = (
    USERS_HEADER + "0,4You,Roy Braun,male,21\n1,Acme Factory,Wilma Mcinnis,female,48\n2,4You,Sam Hill,none,30"
)
HOTELS_HEADER = "travelCode,userCode,name,place,days,price,total,date\n"
FLIGHTS_HEADER = "travelCode,userCode,from,to,flightType,price,time,distance,agency,date\n"
GOOD_FLIGHT = "0,0,Recife (PE),Natal (RN),economic,500.5,1.2,400.0,Rainbow,09/26/2019\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("code,company,name,age\n0,4You,Roy Braun,21", None),  # gender is optional: unlabelled files
        (USERS_HEADER.strip() + ",country\n0,4You,Roy Braun,male,21,", None),  # a country may be unknown
        (
            USERS_HEADER.strip() + ",country\n0,4You,Roy Braun,male,21,US\n1,4You,Ann Lee,female,22,us",
            "row 2 (line 3), column 'country': does not match ^[A-Z]{2}$",
        ),
        (
            USERS_HEADER + "0,4You,Ann\x00 Lee,female,21",
            "row 1 (line 2), column 'name': control character U+0000 is not allowed in text",
        ),
        (USERS_HEADER + '0,4You,"Ann\nLee",female,21', "column 'name': control character U+000A"),
        ("code,company,name,gender\n0,4You,Roy Braun,male", "missing columns ['age']"),
        (USERS_HEADER.strip() + ",email\n0,4You,Roy Braun,male,21,a@b", "unexpected columns ['email']"),
        (
            USERS_HEADER + "0,4You,Roy Braun,male,twenty",
            "row 1 (line 2), column 'age': not an integer: 'twenty'",
        ),
        (
            USERS_HEADER + "0,4You,Roy Braun,male,21\n1,4You,Ann Lee,female,130",
            "row 2 (line 3), column 'age': 130",
        ),
        (USERS_HEADER + "0,4You,Roy Braun,male,-1", "column 'age': -1 is below the allowed 0"),
        (USERS_HEADER + "0,4You,Roy Braun,male,21.5", "column 'age': not an integer"),
        (USERS_HEADER + "0,4You,,male,21", "row 1 (line 2), column 'name': empty value"),
        (USERS_HEADER + "0,4You,Roy Braun,robot,21", "column 'gender': unknown value 'robot'"),
        (
            USERS_HEADER + "0,4You,Roy Braun,male,21\n0,4You,Ann Lee,female,22",
            "row 2 (line 3), column 'code': duplicate",
        ),
        (USERS_HEADER + "0,4You,Roy Braun,male,NaN", "column 'age': not an integer: 'NaN'"),
        (USERS_HEADER + f"0,4You,{'x' * 201},male,21", "column 'name': longer than 200 characters"),
        ("", "not a readable CSV file"),
    ],
)
def test_users_validation(tmp_path, text, expected):
    path = write(tmp_path, "users.csv", text)
    if expected is None:
        assert len(load_users(path)) == 1
        return
    with pytest.raises(DataError) as error:
        load_users(path)
    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("hotels", "flights", "expected"),
    [
        (
            HOTELS_HEADER + "0,0,Hotel A,Recife (PE),2,-5.0,10.0,09/26/2019",
            None,
            "hotels.csv, row 1 (line 2), column 'price': -5.0 is below",
        ),
        (
            HOTELS_HEADER + "0,7,Hotel A,Recife (PE),2,5.0,10.0,09/26/2019",
            None,
            "column 'userCode': userCode 7 has no user",
        ),
        (
            HOTELS_HEADER + "0,0,Hotel A,Recife (PE),2,5.0,10.0,2019-09-26",
            None,
            "column 'date': not a MM/DD/YYYY date",
        ),
        (
            None,
            FLIGHTS_HEADER + GOOD_FLIGHT + "1,9,Recife (PE),Natal (RN),economic,1,1,1,Rainbow,09/26/2019",
            "flights.csv, row 2 (line 3), column 'userCode'",
        ),
        (
            None,
            FLIGHTS_HEADER + "0,0,Recife (PE),Natal (RN),business,1,1,1,Rainbow,09/26/2019",
            "column 'flightType': unknown value 'business'",
        ),
        (
            None,
            FLIGHTS_HEADER.replace(",agency", "") + "0,0,Recife (PE),Natal (RN),economic,1,1,1,09/26/2019",
            "missing columns ['agency']",
        ),
    ],
)
def test_trip_validation(tmp_path, hotels, flights, expected):
    users = write(tmp_path, "users.csv", GOOD_USERS)
    hotels_path = write(tmp_path, "hotels.csv", hotels) if hotels else None
    flights_path = write(tmp_path, "flights.csv", flights) if flights else None
    with pytest.raises(DataError, match=None) as error:
        load_dataset(users, hotels_path, flights_path)
    assert expected in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_users(tmp_path / "nope.csv")


def test_real_data_loads_with_its_documented_shape(real_data_dir):
    dataset = load_dataset(real_data_dir / "users.csv", real_data_dir / "hotels.csv")
    assert len(dataset.users) == 1340
    assert dataset.users["gender"].value_counts().to_dict() == {"male": 452, "female": 448, "none": 440}
    assert len(dataset.hotels) == 40552
    travel = travel_aggregates(dataset)
    assert (travel["hotel_nights"] >= 0).all()
    assert travel.loc[0, "hotel_nights"] == dataset.hotels.query("userCode == 0")["days"].sum()


def test_generated_data_is_deterministic_and_realistic(tmp_path, sample_data_dir):
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, "-m", "model.sample_data", "--out", str(again), "--users", "400", "--seed", "7"],
        check=True,
    )
    for name in ("users.csv", "hotels.csv", "flights.csv"):
        assert (again / name).read_bytes() == (sample_data_dir / name).read_bytes()
    dataset = load_dataset(*(sample_data_dir / f"{n}.csv" for n in ("users", "hotels", "flights")))
    users = dataset.users
    assert users["age"].between(21, 65).all()
    assert set(users["company"]) <= {"4You", "Acme Factory", "Wonka Company", "Monsters CYA", "Umbrella LTDA"}
    assert users["name"].str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()
    assert 0.25 < (users["gender"] == "none").mean() < 0.42
    legs_per_travel = dataset.flights.groupby("travelCode").size()
    assert (legs_per_travel == 2).all()
    assert set(dataset.hotels["travelCode"]) <= set(dataset.flights["travelCode"])


def test_retrain_refuses_a_bad_file_without_traceback(tmp_path):
    users = write(tmp_path, "users.csv", USERS_HEADER + "0,4You,Roy Braun,male,abc")
    done = retrain(tmp_path, tmp_path / "m")
    assert done.returncode == ExitCode.BAD_INPUT
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{users}, row 1 (line 2), column 'age': not an integer: 'abc'" in done.stdout
    assert not (tmp_path / "m" / "current").exists()


def parquet(tmp_path: Path, name: str, table: pa.Table) -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def test_a_parquet_users_file_loads_as_its_csv_does(tmp_path):
    from_csv = load_users(write(tmp_path, "users.csv", GOOD_USERS))
    from_parquet = load_users(parquet(tmp_path, "users.parquet", pa.Table.from_pandas(from_csv)))
    pd.testing.assert_frame_equal(from_parquet, from_csv)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            {"code": [0], "company": ["4You"], "name": ["Roy Braun"], "age": ["21"]},
            "column 'age': column type string, expected an integer type",
        ),
        (
            {"code": [0], "company": ["4You"], "name": ["Roy Braun"], "age": [21.5]},
            "column 'age': column type double, expected an integer type",
        ),
        (
            {
                "code": [0, 1],
                "company": ["4You", "4You"],
                "name": ["Roy Braun", "Ann Lee"],
                "age": [21, None],
            },
            "row 2 (line 3), column 'age': missing value",
        ),
        (
            {"code": [0], "company": [7], "name": ["Roy Braun"], "age": [21]},
            "column 'company': column type int64, expected a string type",
        ),
        (
            {"code": [0, 1], "company": ["4You", None], "name": ["Roy Braun", "Ann Lee"], "age": [21, 30]},
            "row 2 (line 3), column 'company': empty value",
        ),
        (
            {"code": [0], "company": ["4You"], "name": ["Roy Braun"], "age": [130]},
            "column 'age': 130 is above",
        ),
        ({"code": [0], "name": ["Roy Braun"], "age": [30]}, "missing columns ['company']"),
    ],
)
def test_parquet_users_validation(tmp_path, columns, expected):
    path = parquet(tmp_path, "users.parquet", pa.table(columns))
    with pytest.raises(DataError) as refused:
        load_users(path)
    assert str(refused.value).startswith(str(path)) and expected in str(refused.value)


def test_an_unreadable_parquet_file_is_named(tmp_path):
    path = write(tmp_path, "users.parquet", GOOD_USERS)  # CSV text under a Parquet name
    with pytest.raises(DataError, match=r"users\.parquet: not a readable Parquet file"):
        load_users(path)
    with pytest.raises(DataError, match=r"absent\.parquet: file not found"):
        load_users(tmp_path / "absent.parquet")


def test_a_row_with_too_many_fields_is_named(tmp_path):
    path = write(tmp_path, "users.csv", GOOD_USERS + "\n3,4You,Ann Lee,female,30,extra")
    with pytest.raises(DataError, match=r"row 4 \(line 5\): 6 fields where the header has 5"):
        load_users(path)

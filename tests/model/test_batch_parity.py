"""One feature definition: batch scoring (model.predict, CSV and Parquet) and /predict_gender give every
user of a 10,000-user sample the same prediction, to 1e-9."""

import numpy as np
import pandas as pd
import pytest
import requests

from model.contract import FIELD_BY_NAME
from model.data import Dataset, feature_columns, users_with_travel
from model.sample_data import generate_trips, generate_users
from tests.fixtures.service import wait_for
from tests.model.test_model import run_predict

SAMPLE_USERS = 10_000
COUNTRIES = ("FR", "DE", "IT", "US", "ES", "BR", "JP", None)
TITLES = ("Mrs ", "Herr ", "Dr. ", "Sig.ra ", "")


def varied_users(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Generated users with what real files hold besides: titles, accents and case, countries, a
    company the model never saw; and their trips."""
    users = generate_users(SAMPLE_USERS, rng).drop(columns="gender")
    hotels, flights = generate_trips(users, rng)
    names = users["name"].to_numpy(dtype=object)
    titled = rng.random(SAMPLE_USERS) < 0.1
    names[titled] = [rng.choice(TITLES) + name for name in names[titled]]
    shouted = rng.random(SAMPLE_USERS) < 0.1
    names[shouted] = [name.upper().replace("E", "É") for name in names[shouted]]
    users["name"] = names
    users["country"] = rng.choice(np.array(COUNTRIES, dtype=object), SAMPLE_USERS)
    users.loc[rng.random(SAMPLE_USERS) < 0.05, "company"] = "Globex"
    return users, flights, hotels


def api_predictions(url: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Every user as a JSON instance (missing fields left out), in requests of 1000."""
    fields = [field for field in frame.columns if field in FIELD_BY_NAME]
    instances = [
        {field: value for field, value in user.items() if value is not None and value == value}
        for user in frame[fields].to_dict("records")
    ]
    answers = []
    for start in range(0, len(instances), 1000):
        response = requests.post(
            f"{url}/predict_gender", json={"instances": instances[start : start + 1000]}, timeout=30
        )
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
    return pd.DataFrame(answers)


@pytest.mark.slow
def test_batch_and_api_give_every_user_the_same_prediction(real_model, start_service, tmp_path):
    model_dir, _ = real_model
    users, flights, hotels = varied_users(np.random.default_rng(7))
    users.to_parquet(tmp_path / "users.parquet", index=False)
    users.to_csv(tmp_path / "users.csv", index=False)
    flights.to_csv(tmp_path / "flights.csv", index=False)
    hotels.to_csv(tmp_path / "hotels.csv", index=False)
    trips = ["--flights", str(tmp_path / "flights.csv"), "--hotels", str(tmp_path / "hotels.csv")]
    outputs = {}
    for given, written in (("users.csv", "out.csv"), ("users.parquet", "out.parquet")):
        done = run_predict(
            "--model-dir",
            str(model_dir),
            "--input",
            str(tmp_path / given),
            "--output",
            str(tmp_path / written),
            *trips,
        )
        assert done.returncode == 0, done.stderr
        outputs[written] = (
            pd.read_csv(tmp_path / written)
            if written.endswith(".csv")
            else pd.read_parquet(tmp_path / written)
        )

    server = start_service(model_dir=model_dir)
    wait_for(server, "/readyz")
    # The API is sent what the batch job scores: each user's row with its travel aggregates.
    dataset = Dataset(users.assign(country=users["country"].astype(object)), hotels, flights)
    table = users_with_travel(dataset)
    assert set(feature_columns(table)) > {"name", "country", "travel_count", "hotel_nights"}
    served = api_predictions(server.url, table)

    for written, batch in outputs.items():
        assert batch["code"].tolist() == users["code"].tolist(), written
        assert (batch["predicted_gender"] == served["gender"]).all(), written
        np.testing.assert_allclose(
            batch["probability"], served["probability"], rtol=0, atol=1e-9, err_msg=written
        )
        assert (batch["model_version"] == served["model_version"]).all(), written
    # The sample reaches both sides of the threshold and the title rule.
    assert served["gender"].nunique() == 2 and (served["probability"] >= 0.99).any()

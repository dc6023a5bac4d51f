"""The published model as an MLflow pyfunc, logged "from code" so no wrapper object is pickled.

It loads the same verified artifact (model.sig, model.json and model.pkl, logged together; signed
by a key of GENDER_TRUSTED_KEYS_DIR, read where the pyfunc is loaded) and calls the same predictor
as the API. Its signature comes from the type hints of predict(): a list of users, each
with exactly the input contract's fields, every one optional, validated strictly as the API
validates them (unknown fields, wrong types and values out of bounds are refused).
"""

from pathlib import Path

import mlflow
import pydantic
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from model import artifact, contract, signing
from model.settings import GenderSettings

# A table's missing cell arrives as None, so every field also admits None: it means "absent".
UserInput = pydantic.create_model(
    "UserInput",
    __config__=pydantic.ConfigDict(extra="forbid", allow_inf_nan=False),
    **{field.name: (contract.annotated_type(field, nullable=True), None) for field in contract.FIELDS},
)


class Prediction(pydantic.BaseModel):
    gender: str
    probability: float  # of `gender`, as the API answers


class GenderPyfunc(PythonModel):
    def load_context(self, context):
        trusted = signing.read_trusted_keys(GenderSettings.from_env().trusted_keys_dir)
        self.loaded = artifact.load_version_dir(Path(context.artifacts["version_dir"]), trusted)

    def predict(self, model_input: list[UserInput], params=None) -> list[Prediction]:
        users = [user.model_dump(exclude_none=True) for user in model_input]
        empty = [row for row, user in enumerate(users) if not user]
        if empty:  # as the API refuses an empty instance
            raise MlflowException.invalid_parameter_value(f"users {empty} have no field; send at least one")
        return [
            Prediction(gender=p.gender, probability=p.probability)
            for p in self.loaded.predictor.predict(users)
        ]


mlflow.models.set_model(GenderPyfunc())

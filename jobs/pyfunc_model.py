"""The published model as an MLflow pyfunc, logged "from code" so no wrapper object is pickled.

It loads the same verified artifact (model.pkl checked against model.json) and calls the same
predictor as the API.
"""

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from model import artifact

OUTPUT_COLUMNS = ["gender", "probability"]


class GenderPyfunc(PythonModel):
    def load_context(self, context):
        self.loaded = artifact.load_version_dir(Path(context.artifacts["version_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame(
            self.loaded.predictor.predict(model_input.to_dict("records")), columns=OUTPUT_COLUMNS
        )


mlflow.models.set_model(GenderPyfunc())

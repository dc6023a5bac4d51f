"""Score a users file: `python -m model.predict --model-dir DIR --input users.csv --output out.csv`.

The model must be signed by a key of GENDER_TRUSTED_KEYS_DIR (model.signing).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from model import artifact, drift, signing
from model.data import DataError, Dataset, feature_columns, load_dataset, users_with_travel
from model.exit_codes import ExitCode
from model.features import column_records
from model.settings import GenderSettings, SettingsError

CHUNK_ROWS = 200_000  # bounds the memory of the feature rows


class Scored(NamedTuple):
    predictions: pd.DataFrame  # one row per user, in input order
    bins: drift.BinCounts  # the users' inputs as drift bins


def score(dataset: Dataset, loaded: artifact.LoadedModel) -> Scored:
    """Code, predicted gender, its probability and the model version of every user, in input order;
    and the users counted per drift bin."""
    users = users_with_travel(dataset)
    genders, probabilities = [], []  # decided as the API decides: GenderPredictor.predict
    bins = drift.BinCounts()
    for start in range(0, len(users), CHUNK_ROWS):
        chunk = feature_columns(users.iloc[start : start + CHUNK_ROWS])
        scored = loaded.predictor.predict(column_records(chunk))
        genders += [p.gender for p in scored]
        probabilities += [p.probability for p in scored]
        bins.add(p.bins for p in scored)
    frame = pd.DataFrame(
        {
            "code": users["code"].to_numpy(),
            "predicted_gender": genders,
            "probability": np.round(probabilities, 6),
            "model_version": loaded.version,
        }
    )
    return Scored(frame, bins)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV next to its destination, fsync it, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            frame.to_csv(tmp, index=False)
            os.fchmod(tmp.fileno(), 0o644)  # NamedTemporaryFile makes 0600: the reader may be another user
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__)
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="model directory (its current version is used)"
    )
    parser.add_argument(
        "--input", type=Path, required=True, help="users.csv, with or without a gender column"
    )
    parser.add_argument("--hotels", type=Path, help="hotels.csv, for the travel features (optional)")
    parser.add_argument("--flights", type=Path, help="flights.csv, for the travel features (optional)")
    parser.add_argument("--output", type=Path, required=True, help="predictions CSV to write")
    args = parser.parse_args(argv)
    try:
        trusted = signing.read_trusted_keys(GenderSettings.from_env().trusted_keys_dir)
        loaded = artifact.load(args.model_dir, trusted)
        predictions = score(load_dataset(args.input, args.hotels, args.flights), loaded).predictions
        write_atomically(predictions, args.output)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except artifact.ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.NO_MODEL
    except SettingsError as error:  # the trusted keys included
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"scored {len(predictions)} users with model {loaded.version} into {args.output}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

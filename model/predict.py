"""Score a users file: `python -m model.predict --model-dir DIR --input users.csv --output out.csv`.

Each file is Parquet when its name ends in .parquet, else CSV.

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
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from model import artifact, drift, signing
from model.data import DataError, Dataset, factorized_columns, is_parquet, load_dataset, users_with_travel
from model.exit_codes import ExitCode
from model.pipeline import CLASSES, likelier
from model.settings import GenderSettings, SettingsError

CHUNK_ROWS = 1_000_000  # bounds the memory of the feature matrix


class Scored(NamedTuple):
    predictions: pd.DataFrame  # one row per user, in input order
    bins: drift.BinCounts  # the users' inputs as drift bins


def score(dataset: Dataset, loaded: artifact.LoadedModel) -> Scored:
    """Code, predicted gender, its probability and the model version of every user, in input order;
    and the users counted per drift bin."""
    users = users_with_travel(dataset)
    female = np.empty(len(users))
    bins = drift.BinCounts()
    for start in range(0, len(users), CHUNK_ROWS):
        scores = loaded.predictor.score(factorized_columns(users.iloc[start : start + CHUNK_ROWS]))
        female[start : start + len(scores.female)] = scores.female
        bins.add(scores.bins)
    labels, probabilities = likelier(female)  # decided as the API decides
    frame = pd.DataFrame(
        {
            "code": users["code"].to_numpy(),
            "predicted_gender": pd.Categorical.from_codes(labels, CLASSES),
            "probability": probabilities,
            "model_version": pd.Categorical.from_codes(np.zeros(len(users), dtype=int), [loaded.version]),
        }
    )
    return Scored(frame, bins)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write a table (Parquet for a .parquet path, else CSV) next to its destination, fsync it, then
    rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            if is_parquet(path):
                pq.write_table(table, tmp)
            else:
                pa_csv.write_csv(table, tmp)
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
        "--input", type=Path, required=True, help="users.csv or .parquet, with or without a gender column"
    )
    parser.add_argument("--hotels", type=Path, help="hotels.csv, for the travel features (optional)")
    parser.add_argument("--flights", type=Path, help="flights.csv, for the travel features (optional)")
    parser.add_argument(
        "--output", type=Path, required=True, help="predictions file to write (.csv or .parquet)"
    )
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

"""Train and evaluate: train() loads the data, evaluates every candidate and refits the selected one.

A library, not an entrypoint: `python -m jobs.retrain` trains through it and publishes only what
passes the quality gate.
"""

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

from model import artifact, name_data
from model.candidates import CANDIDATES, Candidate
from model.data import DataError, Dataset, feature_columns, load_dataset, users_with_travel
from model.evaluate import (
    PROTOCOLS,
    SELECTION_PROTOCOL,
    Population,
    make_folds,
    metrics,
    out_of_fold_probabilities,
    save_reliability_diagram,
    traveller_metrics,
)
from model.evaluate import save_confusion_matrix as draw_confusion_matrix
from model.features import FEATURE_NAMES, Columns, FeatureBuilder
from model.names import NameCounts, NamePrior
from model.pipeline import GenderPredictor
from model.sample_data import SURNAMES

DEFAULT_SEED = 0
# About one standard error of accuracy on ~900 users: a smaller lead is noise, and the simpler
# candidate (first in CANDIDATES) is cheaper to serve and easier to trust.
SELECTION_TOLERANCE = 0.005
LIBRARIES = ("numpy", "scikit-learn", "xgboost-cpu", "joblib", "pandas")
# People drawn from each country's first-name statistics to train beside the users: the same
# number from every country, as the pooled prior weighs every country the same.
POPULATION_PER_COUNTRY = 200
RELIABILITY_DIAGRAM = "reliability_diagram.png"


@dataclass
class CandidateResult:
    name: str
    params: dict
    metrics: dict[str, dict]  # protocol -> metrics
    search: list[dict] = field(default_factory=list)  # every parameter set tried, with its score


@dataclass
class TrainingResult:
    predictor: GenderPredictor
    selected: CandidateResult
    candidates: list[CandidateResult]
    metadata: dict
    seconds: float


def population_sample(counts: NameCounts, per_country: int, seed: int) -> Population:
    """People drawn from every country's statistics, each by how many bear the name, with a gender
    drawn by the name's share of women. Each gets a surname, so that their names are as long as the
    users' (name_length is a feature)."""
    rng = np.random.default_rng(seed)
    names, countries, labels = [], [], []
    for country in sorted(counts):
        listed = sorted(counts[country].items())
        people = np.array([women + men for _, (women, men) in listed])
        for index in rng.choice(len(listed), size=per_country, p=people / people.sum()):
            name, (women, men) = listed[index]
            label = int(rng.random() < women / (women + men))
            names.append(f"{name} {rng.choice(SURNAMES)}")
            countries.append(country)
            labels.append(label)
    return {"name": names, "country": countries}, np.array(labels)


def labelled_columns(dataset: Dataset) -> tuple[Columns, np.ndarray]:
    users = users_with_travel(dataset)
    labelled = users[users["gender"].isin(("male", "female"))]
    if labelled["gender"].nunique() < 2:
        raise DataError("users.csv", "training needs users labelled both male and female")
    return feature_columns(labelled), (labelled["gender"] == "female").to_numpy(dtype=int)


def search_candidate(candidate: Candidate, folds: dict, labels: np.ndarray) -> CandidateResult:
    """Pick the candidate's parameters on the selection protocol, then score them on both."""
    tried = []
    for params in candidate.param_sets():
        probabilities = out_of_fold_probabilities(
            folds[SELECTION_PROTOCOL], lambda y, p=params: candidate.build(p, y), len(labels)
        )
        tried.append({"params": params, **metrics(labels, probabilities)})
    best = max(tried, key=lambda t: (t["accuracy"], t["roc_auc"]))
    scores = {SELECTION_PROTOCOL: {k: v for k, v in best.items() if k != "params"}}
    for protocol in PROTOCOLS:
        if protocol != SELECTION_PROTOCOL:
            probabilities = out_of_fold_probabilities(
                folds[protocol], lambda y, p=best["params"]: candidate.build(p, y), len(labels)
            )
            scores[protocol] = metrics(labels, probabilities)
    return CandidateResult(
        candidate.name,
        best["params"],
        scores,
        [{"params": t["params"], "accuracy": t["accuracy"]} for t in tried],
    )


def select(results: list[CandidateResult]) -> CandidateResult:
    """The simplest candidate within SELECTION_TOLERANCE of the best selection-protocol accuracy."""
    best = max(r.metrics[SELECTION_PROTOCOL]["accuracy"] for r in results)
    return next(r for r in results if r.metrics[SELECTION_PROTOCOL]["accuracy"] >= best - SELECTION_TOLERANCE)


def fingerprint(paths: dict[str, Path | None], dataset: Dataset, n_labelled: int) -> dict:
    tables = {"users": dataset.users, "hotels": dataset.hotels, "flights": dataset.flights}
    return {
        "labelled_users": n_labelled,
        **{
            name: {"rows": len(tables[name]), "sha256": artifact.sha256_file(path)}
            for name, path in paths.items()
            if path is not None
        },
    }


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version()} | {
        name: package_metadata.version(name) for name in LIBRARIES
    }


def train(paths: dict[str, Path | None], seed: int = DEFAULT_SEED) -> TrainingResult:
    """Load and validate the inputs, evaluate every candidate, refit the selected one on all data."""
    started = time.perf_counter()
    dataset = load_dataset(paths["users"], paths.get("hotels"), paths.get("flights"))
    columns, labels = labelled_columns(dataset)
    counts = name_data.first_name_counts()
    prior = NamePrior.fit(counts)
    population = population_sample(counts, POPULATION_PER_COUNTRY, seed)
    folds = {
        protocol: make_folds(protocol, columns, labels, prior, population, seed) for protocol in PROTOCOLS
    }
    results = [search_candidate(candidate, folds, labels) for candidate in CANDIDATES]
    selected = select(results)
    builder = FeatureBuilder(prior, seed)
    features, feature_labels = builder.training_matrix(columns, labels, population)
    estimator = next(c for c in CANDIDATES if c.name == selected.name).build(selected.params, feature_labels)
    estimator.fit(features, feature_labels)
    predictor = GenderPredictor(builder, estimator, selected.name)
    metadata = {
        "candidate": selected.name,
        "params": selected.params,
        "metrics": selected.metrics,
        "selection_protocol": SELECTION_PROTOCOL,
        "candidates": {r.name: {"params": r.params, "metrics": r.metrics} for r in results},
        "data": fingerprint(paths, dataset, len(labels)),
        "travellers": {
            "source": name_data.TRAVELLER_SOURCE,
            "metrics": traveller_metrics(predictor, name_data.travellers()),
        },
        "prior_sources": [
            {"country": s.country, "publisher": s.publisher, "licence": s.licence}
            for s in (*name_data.PRIOR_SOURCES, name_data.SSA_SOURCE)
        ],
        "features": list(FEATURE_NAMES),
        "libraries": library_versions(),
        "mlflow_run_id": None,
    }
    return TrainingResult(predictor, selected, results, metadata, time.perf_counter() - started)


def summary_table(result: TrainingResult) -> str:
    header = f"{'candidate':<22}" + "".join(f"{p + ' ' + m:>16}" for p in PROTOCOLS for m in ("acc", "auc"))
    lines = [header, "-" * len(header)]
    for r in result.candidates:
        mark = " *" if r is result.selected else ""
        cells = "".join(
            f"{r.metrics[p]['accuracy']:>16.4f}{r.metrics[p]['roc_auc']:>16.4f}" for p in PROTOCOLS
        )
        lines.append(f"{r.name + mark:<22}{cells}")
    lines.append(
        f"* the simplest within {SELECTION_TOLERANCE} of the best {SELECTION_PROTOCOL} accuracy;"
        f" trained in {result.seconds:.1f} s"
    )
    return "\n".join(lines)


def save_pictures(result: TrainingResult, out_dir: Path) -> list[Path]:
    """The confusion matrices of both protocols and the reliability diagram on the travellers."""
    matrices = [
        draw_confusion_matrix(
            result.selected.metrics[protocol]["confusion_matrix"],
            f"{result.selected.name}, {protocol} 5-fold",
            out_dir / f"confusion_matrix_{protocol}.png",
        )
        for protocol in PROTOCOLS
    ]
    reliability = save_reliability_diagram(
        result.metadata["travellers"]["metrics"],
        f"{result.selected.name} on {name_data.TRAVELLER_SOURCE.split(' (')[0]} travellers",
        out_dir / RELIABILITY_DIAGRAM,
    )
    return [*matrices, reliability]

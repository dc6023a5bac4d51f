"""Train and evaluate: train() loads the data, evaluates every candidate and refits the selected one.

A library, not an entrypoint: `python -m jobs.retrain` trains through it and publishes only what
passes the quality gate.
"""

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
from scipy import optimize
from sklearn.model_selection import train_test_split

from model import artifact, drift, name_data
from model.candidates import CANDIDATES, Candidate
from model.contract import TRAVEL_FIELDS
from model.data import DataError, Dataset, feature_columns, load_dataset, users_with_travel
from model.evaluate import (
    PROTOCOLS,
    SELECTION_PROTOCOL,
    Fold,
    Population,
    make_folds,
    metrics,
    out_of_fold_probabilities,
    save_reliability_diagram,
    segment_accuracy,
    traveller_metrics,
)
from model.evaluate import save_confusion_matrix as draw_confusion_matrix
from model.features import FEATURE_NAMES, Columns, FeatureBuilder, n_rows, take
from model.names import NameCounts, NamePrior
from model.pipeline import GenderPredictor
from model.sample_data import SURNAMES

DEFAULT_SEED = 0
# About one standard error of accuracy on ~900 users: a smaller lead is noise, and the simpler
# candidate (first in CANDIDATES) is cheaper to serve and easier to trust.
SELECTION_TOLERANCE = 0.005
LIBRARIES = ("numpy", "scikit-learn", "xgboost-cpu", "joblib", "pandas")
# People of the first-name statistics that train beside the users: this many from every
# country, with their country, so that small countries' statistics teach the estimator too...
PEOPLE_PER_COUNTRY = 200
# ...and this many without it, shared out by population, as the pooled prior weighs the countries.
PEOPLE_WITHOUT_COUNTRY = 2800
RELIABILITY_DIAGRAM = "reliability_diagram.png"
# The ablation's blocks of input fields, added one at a time in this order: what each block of
# features (model.features) is made from.
ABLATION_BLOCKS = (
    ("names", ("name", "title", "country", "name_length")),
    ("age and company", ("age", "company")),
    ("travel aggregates", TRAVEL_FIELDS),
)
TEMPERATURE_BOUNDS = (0.25, 4.0)
# At most this many labelled users are searched and evaluated on (every candidate, fold and
# protocol), drawn stratified by label; the selected candidate is then fitted on every labelled
# user. Training time then stops growing with the search as the user base grows, and the sample is
# recorded (model.json's "search", MLflow's params), never silent.
SEARCH_USERS = 10_000


@dataclass(frozen=True)
class Prepared:
    """The validated inputs of training and what every candidate is evaluated on."""

    dataset: Dataset
    columns: Columns  # the searched users' prediction fields: the labelled users, or a sample
    labels: np.ndarray  # 1 for female
    prior: NamePrior
    people: Population  # drawn from the first-name statistics, trained on beside the users
    folds: dict[str, list[Fold]]  # protocol -> its folds of the searched users
    seed: int
    all_columns: Columns  # every labelled user, whom the selected candidate is fitted on
    all_labels: np.ndarray
    search: dict  # what model.json records: the searched users, the labelled users, how drawn


@dataclass
class CandidateResult:
    name: str
    params: dict
    metrics: dict[str, dict]  # protocol -> metrics
    search: list[dict] = field(default_factory=list)  # every parameter set tried, with its score
    # protocol -> every labelled user's out-of-fold probability of female under the chosen params
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TrainingResult:
    predictor: GenderPredictor
    selected: CandidateResult
    candidates: list[CandidateResult]
    metadata: dict
    seconds: float
    prepared: Prepared


def apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Whole numbers proportional to `shares` that sum to `total` (largest remainders)."""
    exact = total * shares / shares.sum()
    whole = np.floor(exact).astype(int)
    whole[np.argsort(whole - exact, kind="stable")[: total - whole.sum()]] += 1
    return whole


def population(counts: NameCounts) -> Population:
    """People in proportion to the statistics: PEOPLE_PER_COUNTRY of every country with their
    country, and PEOPLE_WITHOUT_COUNTRY without it, shared out by population; within a country, each
    name and gender as many times as its share of the people. Each gets a surname, so that the names
    are as long as the users' (name_length is a feature)."""
    countries = sorted(counts)
    without_country = apportion(
        PEOPLE_WITHOUT_COUNTRY, np.array([name_data.POPULATIONS[c] for c in countries])
    )
    names, given_countries, labels = [], [], []
    for country, unnamed in zip(countries, without_country, strict=True):
        listed = sorted(counts[country].items())
        people = np.array([(women, men) for _, (women, men) in listed]).ravel()  # name by name: women, men
        for given, size in ((country, PEOPLE_PER_COUNTRY), (None, unnamed)):
            for index in np.flatnonzero(copies := apportion(int(size), people)):
                name, label = listed[index // 2][0], 1 - index % 2
                for _ in range(copies[index]):
                    names.append(f"{name} {SURNAMES[len(names) % len(SURNAMES)]}")
                    given_countries.append(given)
                    labels.append(label)
    return {"name": names, "country": given_countries}, np.array(labels)


def fit_temperature(predictor: GenderPredictor, people: Population) -> float:
    """The temperature (GenderPredictor) that fits the population's genders best, by log-loss.

    The estimator learns from users and population together; its log-odds come out too timid or
    too bold for the population alone, by how much depends on the data. One scale factor fixed on
    the population corrects that and leaves every predicted gender as it is.
    """
    columns, labels = people
    female = np.clip(predictor.score(columns).female, 1e-12, 1 - 1e-12)
    log_odds = np.log(female / (1 - female))

    def log_loss(temperature: float) -> float:
        return float(np.mean(np.logaddexp(0.0, -np.where(labels == 1, 1, -1) * temperature * log_odds)))

    return float(optimize.minimize_scalar(log_loss, bounds=TEMPERATURE_BOUNDS, method="bounded").x)


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
        tried.append((params, metrics(labels, probabilities), probabilities))
    best_params, best_metrics, best_probabilities = max(
        tried, key=lambda t: (t[1]["accuracy"], t[1]["roc_auc"])
    )
    scores = {SELECTION_PROTOCOL: best_metrics}
    probabilities = {SELECTION_PROTOCOL: best_probabilities}
    for protocol in PROTOCOLS:
        if protocol != SELECTION_PROTOCOL:
            probabilities[protocol] = out_of_fold_probabilities(
                folds[protocol], lambda y, p=best_params: candidate.build(p, y), len(labels)
            )
            scores[protocol] = metrics(labels, probabilities[protocol])
    return CandidateResult(
        candidate.name,
        best_params,
        scores,
        [{"params": params, "accuracy": scored["accuracy"]} for params, scored, _ in tried],
        probabilities,
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


def drift_reference(predictor: GenderPredictor, columns) -> dict:
    """The training users' inputs as drift bins and the share predicted female: what the API and the
    batch job compare the users they score with (model.drift)."""
    female, bins = predictor.score(columns)
    return drift.reference(drift.BinCounts().add(bins), float((female >= 0.5).mean()) if len(female) else 0.0)


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version()} | {
        name: package_metadata.version(name) for name in LIBRARIES
    }


def prepare(
    paths: dict[str, Path | None], seed: int = DEFAULT_SEED, search_users: int = SEARCH_USERS
) -> Prepared:
    """Load and validate the inputs, fit the first-name prior, draw the searched users (SEARCH_USERS)
    and make every protocol's folds of them."""
    dataset = load_dataset(paths["users"], paths.get("hotels"), paths.get("flights"))
    all_columns, all_labels = labelled_columns(dataset)
    searched = search_sample(all_labels, search_users, seed)
    columns, labels = take(all_columns, searched), all_labels[searched]
    counts = name_data.first_name_counts()
    prior = NamePrior.fit(counts, name_data.POPULATIONS)
    people = population(counts)
    folds = {protocol: make_folds(protocol, columns, labels, prior, people, seed) for protocol in PROTOCOLS}
    search = {
        "searched_users": len(labels),
        "labelled_users": len(all_labels),
        "sample": None if len(labels) == len(all_labels) else f"stratified by label, seed {seed}",
    }
    return Prepared(dataset, columns, labels, prior, people, folds, seed, all_columns, all_labels, search)


def search_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The rows (in order) of at most `size` users drawn stratified by label; every row when there
    are no more than that."""
    if len(labels) <= size:
        return np.arange(len(labels))
    sampled, _ = train_test_split(
        np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed, shuffle=True
    )
    return np.sort(sampled)


def train(
    paths: dict[str, Path | None], seed: int = DEFAULT_SEED, search_users: int = SEARCH_USERS
) -> TrainingResult:
    """Load and validate the inputs, evaluate every candidate on the searched users, fit the
    selected one on every labelled user."""
    started = time.perf_counter()
    prepared = prepare(paths, seed, search_users)
    columns, labels, prior, people = prepared.columns, prepared.labels, prepared.prior, prepared.people
    results = [search_candidate(candidate, prepared.folds, labels) for candidate in CANDIDATES]
    selected = select(results)
    builder = FeatureBuilder(prior, seed)
    features, feature_labels = builder.training_matrix(prepared.all_columns, prepared.all_labels, people)
    estimator = next(c for c in CANDIDATES if c.name == selected.name).build(selected.params, feature_labels)
    estimator.fit(features, feature_labels)
    untempered = GenderPredictor(builder, estimator, selected.name)
    temperature = fit_temperature(untempered, people)
    predictor = GenderPredictor(builder, estimator, selected.name, temperature)
    metadata = {
        "candidate": selected.name,
        "params": selected.params,
        "metrics": selected.metrics,
        "selection_protocol": SELECTION_PROTOCOL,
        "search": prepared.search,
        "temperature": temperature,
        "candidates": {r.name: {"params": r.params, "metrics": r.metrics} for r in results},
        # Accuracy within segments of the users, each scored by a model that did not see its first name.
        "segments": segment_accuracy(columns, labels, selected.probabilities[SELECTION_PROTOCOL], prior),
        "data": fingerprint(paths, prepared.dataset, len(prepared.all_labels)),
        "travellers": {
            "source": name_data.TRAVELLER_SOURCE,
            "metrics": traveller_metrics(predictor, name_data.travellers()),
        },
        "prior_sources": [
            {"country": s.country, "publisher": s.publisher, "licence": s.licence}
            for s in (*name_data.PRIOR_SOURCES, name_data.SSA_SOURCE)
        ],
        "features": list(FEATURE_NAMES),
        "drift_reference": drift_reference(predictor, prepared.all_columns),
        "libraries": library_versions(),
        "mlflow_run_id": None,
    }
    return TrainingResult(predictor, selected, results, metadata, time.perf_counter() - started, prepared)


def blanked(columns: Columns, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """The same users with `fields` missing for every one of them, as a client that never sends them."""
    rows = n_rows(columns)
    return {name: np.full(rows, None) if name in fields else values for name, values in columns.items()}


def ablation_columns(columns: Columns) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(blocks, columns) for each step of ABLATION_BLOCKS: the blocks so far, every later block's
    fields blanked. A block none of whose fields the users have adds no step."""
    steps = []
    for index, (block, fields) in enumerate(ABLATION_BLOCKS):
        if index > 0 and not any(name in columns for name in fields):
            continue
        later = [name for _, block_fields in ABLATION_BLOCKS[index + 1 :] for name in block_fields]
        steps.append((f"+ {block}" if index else f"{block} alone", blanked(columns, later)))
    return steps


def ablation(prepared: Prepared, candidate: CandidateResult) -> list[dict]:
    """The candidate, with its chosen parameters, scored on the selection protocol with the input
    blocks added one at a time: {"blocks", "accuracy", "roc_auc"} per step (ablation_columns).

    Blanked fields go through the one feature path as missing values, and each step's folds are made
    again from its own columns, so that no step's features see a blanked field.
    """
    estimator = next(c for c in CANDIDATES if c.name == candidate.name)
    rows = []
    for blocks, columns in ablation_columns(prepared.columns):
        folds = make_folds(
            SELECTION_PROTOCOL, columns, prepared.labels, prepared.prior, prepared.people, prepared.seed
        )
        probabilities = out_of_fold_probabilities(
            folds, lambda y: estimator.build(candidate.params, y), len(prepared.labels)
        )
        scored = metrics(prepared.labels, probabilities)
        rows.append({"blocks": blocks, "accuracy": scored["accuracy"], "roc_auc": scored["roc_auc"]})
    return rows


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

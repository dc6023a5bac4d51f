"""The model card of a published version: model_card.md beside model.json, in the Hugging Face
model card format (YAML metadata between `---` lines, then Markdown).

`render` is a pure function of model.json's content, whatever the order of its keys: every number in
the card is one of model.json's, so the card says nothing the signed metadata does not. jobs.retrain
logs it to MLflow and makes it the registered version's description; the API serves the card of the
model in use at /model-card.
"""

import yaml

# MLflow's SQL stores keep a model version's description in a VARCHAR(5000) (model_versions.description):
# a longer card fails registration on PostgreSQL, so a card must stay within it.
MAX_CHARACTERS = 5000
# The largest groups of a segment that the card lists; model.json holds them all.
MAX_SEGMENT_VALUES = 8
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
# The metrics of model-index (the card's metadata); the body's table has them all.
INDEXED_METRICS = ("accuracy", "f1", "roc_auc")
METRIC_NAMES = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "roc_auc": "ROC AUC",
}
PROTOCOL_NAMES = {
    "stratified": "stratified 5-fold",
    "grouped": "5-fold grouped by first name",
}
SETTINGS = ("without_country", "with_country")
TAGS = ("tabular-classification", "sklearn", "gender-classification", "first-names")
# Part of the card text, beside numbers from model.json: what the model is and is not for.
SCOPE = """\
## What it predicts

Which of its training data's two labels, `male` or `female`, a travel platform's user profile (name,
title, country, age, company, travel) most likely carries, and that label's probability. Not a
person's gender identity, which no profile states: someone outside the two labels still gets one.

## Intended and out-of-scope uses

For aggregate figures about the users (shares of each label, drift monitoring) and for pre-filling a
field the user sees and can correct. Not for any decision about an individual based on it (prices,
eligibility, access, targeting), nor for inferring anyone's gender identity."""
LIMITATIONS = """\
## Known limitations

- A name the first-name statistics do not list is scored from its ending; with no evidence at all the
  probability stays near even.
- A name's gender can depend on the country (Andrea is a man's name in Italy, a woman's in Germany;
  Jean a man's in France, a woman's in the US): without `country` the answer is the pooled one.
- A gendered title decides the answer (probability at least 0.99), whatever the name."""


def _number(value: float) -> str:
    return f"{value:.3f}"


def _front_matter(metadata: dict) -> str:
    """The card's YAML metadata; model-index holds both protocols' results with model.json's numbers."""
    results = [
        {
            "task": {"type": "tabular-classification"},
            "dataset": {"type": "users", "name": f"labelled users, {PROTOCOL_NAMES[protocol]}"},
            "metrics": [
                {"type": metric, "value": scores[metric], "name": f"{protocol} {METRIC_NAMES[metric]}"}
                for metric in INDEXED_METRICS
            ],
        }
        for protocol, scores in sorted(metadata["metrics"].items())
    ]
    front = {
        "license": "mit",
        "library_name": "sklearn",
        "tags": list(TAGS),
        "pipeline_tag": "tabular-classification",
        "model-index": [{"name": f"gender-classifier {metadata['version']}", "results": results}],
    }
    return yaml.safe_dump(front, sort_keys=False, default_flow_style=None, allow_unicode=True, width=110)


def _evaluation(metadata: dict) -> list[str]:
    header = " | ".join(METRIC_NAMES[metric] for metric in METRICS)
    search = metadata.get("search")  # none in a model trained before search samples
    sampled = search is not None and search["sample"] is not None
    evaluated = (
        f"a sample of {search['searched_users']:,} of the {search['labelled_users']:,} labelled users "
        f"({search['sample']}; the model is fitted on all of them)"
        if sampled
        else "the labelled users"
    )
    lines = [
        "## Evaluation",
        "",
        f"Out-of-fold on {evaluated}; selected on {metadata['selection_protocol']} (test first names "
        "unseen in training).",
        "",
        f"| protocol | {header} |",
        "| --- |" + " ---: |" * len(METRICS),
    ]
    for protocol, scores in sorted(metadata["metrics"].items()):
        cells = " | ".join(_number(scores[metric]) for metric in METRICS)
        lines.append(f"| {protocol} | {cells} |")
    return lines


def _calibration(metadata: dict) -> list[str]:
    travellers = metadata["travellers"]
    scores = travellers["metrics"]
    countries = sorted(scores[SETTINGS[0]]["accuracy_by_country"])
    lines = [
        "## Calibration and travellers",
        "",
        f"Temperature {metadata['temperature']:.3f} (log-loss on the statistics' people). Travellers of "
        f"{len(countries)} countries the statistics lack ({travellers['source']}):",
        "",
        "| | accuracy | ECE |",
        "| --- | ---: | ---: |",
        *(
            f"| {setting.replace('_', ' ')} | {_number(scores[setting]['accuracy'])} | "
            f"{_number(scores[setting]['ece'])} |"
            for setting in SETTINGS
        ),
        "",
        "Accuracy by country (without / with it): "
        + ", ".join(
            f"{country} {_number(scores[SETTINGS[0]]['accuracy_by_country'][country])}"
            f"/{_number(scores[SETTINGS[1]]['accuracy_by_country'][country])}"
            for country in countries
        )
        + ".",
    ]
    return lines


def _segments(metadata: dict) -> list[str]:
    """Each segment's largest groups: accuracy (users)."""
    lines = [
        "## Results by segment",
        "",
        "Accuracy (users) of the selected candidate's out-of-fold predictions, "
        f"{metadata['selection_protocol']}:",
        "",
    ]
    for segment, groups in sorted(metadata["segments"].items()):
        largest = sorted(groups.items(), key=lambda item: (-item[1]["users"], item[0]))
        shown = [f"{group} {_number(result['accuracy'])} ({result['users']})" for group, result in largest]
        if len(shown) > MAX_SEGMENT_VALUES:
            rest = sum(result["users"] for _, result in largest[MAX_SEGMENT_VALUES:])
            shown[MAX_SEGMENT_VALUES:] = [f"{len(largest) - MAX_SEGMENT_VALUES} more in model.json ({rest})"]
        lines.append(f"- {segment}: " + ", ".join(shown))
    return lines


def _training_data(metadata: dict) -> list[str]:
    files = {name: value for name, value in sorted(metadata["data"].items()) if isinstance(value, dict)}
    sources = "; ".join(f"{source['country']} {source['publisher']}" for source in metadata["prior_sources"])
    return [
        "## Training data",
        "",
        f"{metadata['data']['labelled_users']} labelled users, and people drawn from first-name statistics.",
        "",
        *(f"- `{name}.csv`: {value['rows']} rows, `{value['sha256']}`" for name, value in files.items()),
        "",
        f"First-name statistics (licences: model.json's prior_sources): {sources}.",
    ]


def _about(metadata: dict) -> list[str]:
    params = ", ".join(f"{name}={value}" for name, value in sorted(metadata["params"].items()))
    run = metadata.get("mlflow_run_id")
    return [
        f"# gender-classifier {metadata['version']}",
        "",
        f"Published {metadata['created_at']}: `{metadata['candidate']}` ({params}), model format "
        f"{metadata['format']}" + (f", MLflow run `{run}`" if run else "") + ".",
    ]


def render(metadata: dict) -> str:
    """The card of the version that model.json `metadata` describes (complete: version and created_at
    included)."""
    libraries = ", ".join(f"{name} {version}" for name, version in sorted(metadata["libraries"].items()))
    sections = [
        _about(metadata),
        [SCOPE],
        _training_data(metadata),
        _evaluation(metadata),
        _calibration(metadata),
        _segments(metadata),
        [LIMITATIONS],
        ["## Libraries", "", libraries + "."],
    ]
    body = "\n\n".join("\n".join(section) for section in sections)
    return f"---\n{_front_matter(metadata)}---\n\n{body}\n"

"""The model card of a trained model: Hugging Face's format (YAML metadata, then Markdown), every
number equal to model.json's, within the registry's description limit."""

import json
import re

import pytest
import yaml

from model import artifact, card


@pytest.fixture(scope="module")
def published(sample_model_dir) -> tuple[dict, str]:
    """(model.json, model_card.md) of the version jobs.retrain published."""
    version_dir = sample_model_dir / artifact.VERSIONS / artifact.current_version(sample_model_dir)
    metadata = json.loads((version_dir / artifact.METADATA_FILE).read_text())
    return metadata, (version_dir / artifact.CARD_FILE).read_text()


def front_matter_and_body(text: str) -> tuple[dict, str]:
    match = re.fullmatch(r"---\n(.*?\n)---\n(.*)", text, re.DOTALL)
    assert match, f"no YAML metadata between --- lines at the top:\n{text[:300]}"
    return yaml.safe_load(match[1]), match[2]


def test_the_published_card_is_the_rendering_of_its_model_json(published):
    metadata, text = published
    without_its_own_sha = {key: value for key, value in metadata.items() if key != "model_card_sha256"}
    assert card.render(without_its_own_sha) == text


def test_the_metadata_is_yaml_with_both_protocols_numbers(published):
    metadata, text = published
    front, _ = front_matter_and_body(text)
    assert front["license"] == "mit" and front["library_name"] == "sklearn"
    assert front["pipeline_tag"] == "tabular-classification" and "tabular-classification" in front["tags"]
    (index,) = front["model-index"]
    assert metadata["version"] in index["name"]
    indexed = {}
    for result in index["results"]:
        assert result["task"]["type"] == "tabular-classification"
        for metric in result["metrics"]:
            assert set(metric) == {"type", "value", "name"}
            protocol = metric["name"].split()[0]
            indexed[protocol, metric["type"]] = metric["value"]
    expected = {
        (protocol, name): scores[name]
        for protocol, scores in metadata["metrics"].items()
        for name in card.INDEXED_METRICS
    }
    assert set(metadata["metrics"]) == {"stratified", "grouped"}
    assert indexed == expected  # the very floats of model.json, not rounded ones


def row(body: str, start: str) -> str:
    (found,) = [line for line in body.splitlines() if line.startswith(start)]
    return found


def test_the_body_has_every_protocol_travellers_and_segment_with_its_number(published):
    metadata, text = published
    _, body = front_matter_and_body(text)
    for protocol, scores in metadata["metrics"].items():
        assert row(body, f"| {protocol} |") == (
            f"| {protocol} | " + " | ".join(f"{scores[name]:.3f}" for name in card.METRICS) + " |"
        )
    travellers = metadata["travellers"]["metrics"]
    for setting, scores in travellers.items():
        assert row(body, f"| {setting.replace('_', ' ')} |") == (
            f"| {setting.replace('_', ' ')} | {scores['accuracy']:.3f} | {scores['ece']:.3f} |"
        )
    by_country = row(body, "Accuracy by country")
    for country, accuracy in travellers["without_country"]["accuracy_by_country"].items():
        with_it = travellers["with_country"]["accuracy_by_country"][country]
        assert f"{country} {accuracy:.3f}/{with_it:.3f}" in by_country
    assert f"Temperature {metadata['temperature']:.3f}" in body
    assert set(metadata["segments"]) == {"first_name", "title", "age_band", "company"}
    for segment, groups in metadata["segments"].items():
        line = row(body, f"- {segment}: ")
        for group, result in groups.items():
            assert f"{group} {result['accuracy']:.3f} ({result['users']})" in line


def test_the_body_names_the_data_libraries_scope_and_limitations(published):
    metadata, text = published
    _, body = front_matter_and_body(text)
    for name, fingerprint in metadata["data"].items():
        if isinstance(fingerprint, dict):
            assert f"`{name}.csv`: {fingerprint['rows']} rows, `{fingerprint['sha256']}`" in body
    for name, version in metadata["libraries"].items():
        assert f"{name} {version}" in body
    for source in metadata["prior_sources"]:
        assert f"{source['country']} {source['publisher']}" in body
    headings = re.findall(r"^## (.+)$", body, re.MULTILINE)
    assert headings == [
        "What it predicts",
        "Intended and out-of-scope uses",
        "Training data",
        "Evaluation",
        "Calibration and travellers",
        "Results by segment",
        "Known limitations",
        "Libraries",
    ]
    assert "not a person's gender identity" in body.lower().replace("\n", " ")
    assert "decision about an individual" in body.replace("\n", " ")


def test_the_card_fits_the_registrys_description(published):
    _, text = published
    assert len(text) <= card.MAX_CHARACTERS, len(text)


def test_a_segment_with_many_groups_lists_the_largest_and_counts_the_rest(published):
    metadata, _ = published
    companies = {f"Company {i:02d}": {"users": 100 - i, "accuracy": 0.9} for i in range(30)}
    text = card.render(metadata | {"segments": {"company": companies}})
    line = row(front_matter_and_body(text)[1], "- company: ")
    shown = [f"Company {i:02d} 0.900 ({100 - i})" for i in range(card.MAX_SEGMENT_VALUES)]
    rest = sum(100 - i for i in range(card.MAX_SEGMENT_VALUES, 30))
    assert (
        line
        == "- company: " + ", ".join(shown) + f", {30 - card.MAX_SEGMENT_VALUES} more in model.json ({rest})"
    )
    assert len(text) <= card.MAX_CHARACTERS

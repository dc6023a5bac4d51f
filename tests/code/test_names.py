"""Names: cleaning and folding, titles, the fitted prior, and the first-name data it is fitted from."""

import gzip
import math

import pytest

from model import name_data
from model.names import MIN_FULL_LIST_NAMES, NamePrior, clean_text, fold, parse_name, title_key


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["José", "JOSE", "jose", "Jose\u0301", "Ｊｏｓｅ"], "jose"),
        (["Zoë", "ZOE", "Zoe\u0308"], "zoe"),
        (["Jürgen", "Jurgen"], "jurgen"),
        (["Łukasz", "Lukasz"], "lukasz"),
        (["Søren", "Soren"], "soren"),
        (["Đorđe", "Dorde"], "dorde"),
        (["Groß", "GROSS"], "gross"),
        (["Jean-Pierre", "JEAN-PIERRE"], "jean-pierre"),
    ],
)
def test_fold_is_case_and_accent_insensitive(spellings, key):
    assert {fold(clean_text(spelling)) for spelling in spellings} == {key}


def test_clean_text_removes_format_characters_and_collapses_spacing():
    assert clean_text("\u202e Ann\u200b\u00a0 \u2060Lee\t\n") == "Ann Lee"
    assert clean_text("\ufeff") == ""


TITLE_CASES = [
    ("Mr", "male"),
    ("Mrs", "female"),
    ("Ms", "female"),
    ("Miss", "female"),
    ("Herr", "male"),
    ("Frau", "female"),
    ("Sr.", "male"),
    ("Sra.", "female"),
    ("Srta.", "female"),
    ("M.", "male"),
    ("Mme", "female"),
    ("Mlle", "female"),
    ("Sig.", "male"),
    ("Sig.ra", "female"),
    ("Pan", "male"),
    ("Pani", "female"),
    ("Dhr.", "male"),
    ("Mevr.", "female"),
    ("Dr.", None),
]


@pytest.mark.parametrize(("title", "gender"), TITLE_CASES)
def test_titles_in_any_case_with_or_without_dots(title, gender):
    for spelling in {title, title.upper(), title.lower(), title.replace(".", ""), title + "."}:
        parsed = parse_name(f"{spelling} Alex Morgan")
        assert (parsed.title_gender, parsed.first_name) == (gender, "alex"), spelling


def test_words_that_are_no_titles_are_first_names():
    for name in ("Don Draper", "Marta Kowalska", "Srebrenka Horvat", "Ms-Tech Ltd"):
        assert title_key(name.split()[0]) is None
        assert parse_name(name).title_gender is None


def listing(extra: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """A country's list, long enough to be pooled: MIN_FULL_LIST_NAMES filler names plus `extra`."""
    return {f"filler{i}": (10.0, 10.0) for i in range(MIN_FULL_LIST_NAMES)} | extra


EVEN = {"AA": 1.0, "BB": 1.0}


def test_the_pooled_prior_weighs_countries_by_population_not_by_head_count():
    # AA's statistics count a hundred times as many people as BB's; in both, a tenth of the people
    # are called Alex: men in AA, women in BB. Pooled, each weighs as much as its population.
    aa = listing({"alex": (0.0, 22_000.0)} | {f"aa{i}": (500.0, 500.0) for i in range(196)})
    bb = listing({"alex": (2000 / 9, 0.0)})
    assert prior_of({"AA": aa, "BB": bb}, EVEN).pooled["alex"] == pytest.approx(0.0, abs=0.01)
    assert prior_of({"AA": aa, "BB": bb}, {"AA": 3.0, "BB": 1.0}).pooled["alex"] == pytest.approx(
        -math.log(3), abs=0.01
    )
    prior = prior_of({"AA": aa, "BB": bb}, EVEN)
    assert prior.log_odds("alex", "AA")[0] < -5 < 5 < prior.log_odds("alex", "BB")[0]


def prior_of(counts, populations=EVEN) -> NamePrior:
    return NamePrior.fit(counts, populations)


def test_a_short_list_counts_as_the_most_common_names_of_its_country():
    # AA's full list: Andrea is its most common name, a woman's, borne by 100 of its 2,100 people.
    # IT lists one name, Andrea, a man's: as common in IT as AA's most common name is in AA.
    counts = {"AA": listing({"andrea": (100.0, 0.0)}), "IT": {"andrea": (0.0, 5000.0)}}
    prior = prior_of(counts, {"AA": 1.0, "IT": 1.0})
    assert prior.pooled["andrea"] == pytest.approx(0.0, abs=0.01)
    assert prior.log_odds("andrea", "IT")[0] < -5 < 0 < prior.log_odds("andrea", "AA")[0]


def test_a_country_keeps_only_what_differs_from_the_pool():
    prior = prior_of({"AA": listing({"maria": (1000.0, 1.0)}), "BB": listing({"maria": (900.0, 2.0)})})
    assert "maria" not in prior.by_country["BB"]
    assert prior.log_odds("maria", "BB") == prior.log_odds("maria")


def test_an_unlisted_name_gets_its_endings_odds_and_nothing_else_stays_even():
    women = {f"name{i}ova": (50.0, 0.0) for i in range(25)}
    men = {f"name{i}slav": (0.0, 50.0) for i in range(25)}
    prior = prior_of({"AA": listing(women | men)})
    prior.endings = {ending: value for ending, value in prior.endings.items() if ending in ("ova", "slav")}
    assert prior.log_odds("kratochvilova") == (pytest.approx(prior.endings["ova"]), False)
    assert prior.log_odds("vaclavslav")[0] < 0 < prior.log_odds("kratochvilova")[0]
    assert prior.log_odds("xq") == (0.0, False)


@pytest.fixture(scope="module")
def first_name_counts():
    return name_data.build_counts()


def test_the_prior_reads_only_folders_whose_licence_is_stated(first_name_counts):
    folder = name_data._names_folder()
    for source in name_data.PRIOR_SOURCES:
        statement = (folder / f"names_{source.country.lower()}" / source.stated_in).read_text(
            errors="replace"
        )
        assert source.statement in statement, source.country
    assert set(first_name_counts) == {s.country for s in name_data.PRIOR_SOURCES} | {"US"}


def test_first_name_counts_are_folded_and_plausible(first_name_counts):
    for country, names in first_name_counts.items():
        assert names, country
        for name, (women, men) in names.items():
            assert name == fold(name) and " " not in name
            assert women >= 0 and men >= 0 and women + men > 0
    fr = first_name_counts["FR"]
    assert fr["helene"][0] > 1000 * max(fr["helene"][1], 1)  # HÉLÈNE, folded
    assert first_name_counts["IT"]["andrea"][1] > 1000 * max(first_name_counts["IT"]["andrea"][0], 1)


def test_travellers_come_from_countries_the_prior_does_not_cover():
    travellers = name_data.build_travellers()
    countries = {t.country for t in travellers}
    assert len(countries) >= 12 and not countries & {s.country for s in name_data.PRIOR_SOURCES}
    assert "US" not in countries
    for traveller in travellers:
        assert len(traveller.name.split(" ")) >= 2  # first name and surname
        assert 0 < traveller.weight <= name_data.MAX_TRAVELLER_WEIGHT
    assert {t.female for t in travellers} == {0, 1}


def test_written_files_read_back_as_built(tmp_path, monkeypatch, first_name_counts):
    counts_path, _ = name_data.write(tmp_path)
    with gzip.open(counts_path, "rt") as written:
        assert written.readline().strip() == "country,first_name,women,men"
    monkeypatch.setattr(name_data, "INSTALLED_DIR", tmp_path)
    for cached in (name_data.first_name_counts, name_data.travellers):
        cached.cache_clear()
    try:
        read = name_data.first_name_counts()
        assert read.keys() == first_name_counts.keys()
        for country, names in first_name_counts.items():
            assert read[country].keys() == names.keys()
            assert all(
                math.isclose(a, b, rel_tol=1e-5)
                for name in names
                for a, b in zip(read[country][name], names[name], strict=True)
            )
        assert list(name_data.travellers()) == name_data.build_travellers()
    finally:
        for cached in (name_data.first_name_counts, name_data.travellers):
            cached.cache_clear()

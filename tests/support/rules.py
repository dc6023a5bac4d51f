"""Test-only variants of the real rules file."""

import yaml


def rules_with_short_for(rules_text: str, for_: str = "5s") -> str:
    """The rule file `rules_text` with every `for:` set to `for_`, everything else as it is.

    An end-to-end test cannot wait an hour for GenderInputDrift; with this copy loaded into a real
    Prometheus the alert reaches pending and firing within seconds, from the real expressions.
    Rules without a `for:` keep none (they fire at once already).
    """
    rules = yaml.safe_load(rules_text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True, width=1000)

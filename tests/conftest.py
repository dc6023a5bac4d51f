"""Fixtures are grouped by the part of the system they start; each module owns its own."""

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.data",
    "tests.fixtures.models",
    "tests.fixtures.service",
    "tests.fixtures.stores",
    "tests.fixtures.tracking",
]

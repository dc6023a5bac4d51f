"""The Airflow tests' shared metadata database: one `airflow db migrate` for the folder's tests."""

import pytest

from tests.support.airflow_venv import migrate


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """An AIRFLOW_HOME with a migrated SQLite database; each dag.test() adds a run of its own."""
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(home)
    return home

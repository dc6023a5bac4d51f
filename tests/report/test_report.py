"""The classification report: scripts/report.py runs notebooks/classification.ipynb on a real kernel,
and the committed notebook carries a real run's outputs that name no user."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from model.data import load_users
from model.settings import CHECKOUT_DIR

NOTEBOOK = CHECKOUT_DIR / "notebooks" / "classification.ipynb"
# The repository's web page shows a notebook up to about this size.
MAX_NOTEBOOK_BYTES = 2_000_000
PARAMETER_TAGS = {"parameters", "injected-parameters"}


def report(data_dir: Path, model_dir: Path, output_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "scripts/report.py",
            *("--data-dir", str(data_dir), "--model-dir", str(model_dir), "--output-dir", str(output_dir)),
        ],
        capture_output=True,
        text=True,
        cwd=CHECKOUT_DIR,
    )


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def assert_ran_every_cell(notebook: nbformat.NotebookNode) -> None:
    """Every code cell ran, in order, without an error, and each one past the parameters shows
    something."""
    cells = code_cells(notebook)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    errors = [output for cell in cells for output in cell.outputs if output.output_type == "error"]
    assert not errors, errors
    silent = [
        cell.source.splitlines()[0]
        for cell in cells
        if not PARAMETER_TAGS & set(cell.metadata.get("tags", [])) and not cell.outputs
    ]
    assert not silent, f"code cells without outputs: {silent}"


def output_texts(notebook: nbformat.NotebookNode) -> list[str]:
    """Every text that the notebook shows: its outputs' text of any kind, and its markdown."""
    texts = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    for cell in code_cells(notebook):
        for output in cell.outputs:
            if output.output_type == "stream":
                texts.append(output.text)
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    texts.append(value)
    return texts


@pytest.mark.slow
def test_the_notebook_runs_every_cell_on_generated_data(sample_data_dir, sample_model_dir, tmp_path):
    committed = NOTEBOOK.read_bytes()
    done = report(sample_data_dir, sample_model_dir, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    executed = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    assert_ran_every_cell(executed)
    # Papermill's timings and the kernel's timestamps are gone, so that a re-run diffs by its data.
    assert "papermill" not in executed.metadata
    assert not [cell.metadata for cell in executed.cells if {"papermill", "execution"} & set(cell.metadata)]
    assert [cell.id for cell in executed.cells if "injected-parameters" in cell.metadata.get("tags", [])] == [
        "injected-parameters"
    ]
    # Written back by --commit, the notebook must pass `make lint` as it is.
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check"], ["format", "--check"]):
        linted = subprocess.run([ruff, *command, tmp_path / NOTEBOOK.name], capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    html = (tmp_path / "classification.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 8  # the figures are inside the page
    ablation = (tmp_path / "ablation.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in ablation[1:]] == [
        "names alone",
        "+ age and company",
        "+ travel aggregates",
    ]
    assert NOTEBOOK.read_bytes() == committed  # only --commit writes it


def test_a_failing_cell_fails_the_script_naming_the_cell(tmp_path):
    done = report(tmp_path / "no-such-data", tmp_path / "models", tmp_path / "out")
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith("error: cell In ["), message
    assert "DataError" in message
    assert "no users.csv in this directory" in message
    assert str(tmp_path / "out" / NOTEBOOK.name) in message  # where to see how far it got
    assert "Traceback" not in done.stderr
    assert len(message.splitlines()) == 1


def test_the_committed_notebook_shows_a_whole_run_under_the_size_limit():
    assert NOTEBOOK.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert_ran_every_cell(notebook)
    outputs = [output for cell in code_cells(notebook) for output in cell.outputs]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 8  # its figures


def test_no_output_of_the_committed_notebook_holds_a_users_full_name(real_data_dir):
    names = {name.casefold() for name in load_users(real_data_dir / "users.csv")["name"]}
    shown = "\n".join(output_texts(nbformat.read(NOTEBOOK, as_version=4))).casefold()
    assert len(shown) > 10_000  # the outputs are there to be searched
    found = sorted(name for name in names if name in shown)
    assert not found, f"{len(found)} full names of users.csv in the notebook"

"""Run the classification notebook and write it with its HTML (`make report`, `make report-commit`).

Executes notebooks/classification.ipynb with papermill on this interpreter's `python3` kernel (the
venv's ipykernel), with the data, model and output directories as its parameters, then writes the
executed notebook and its HTML (images embedded) into the output folder. Papermill's per-cell timings
and the kernel's execution timestamps are removed: a re-run on the same data and model writes the same
notebook, and a retrain changes little more than the model version it names. --commit writes the
executed notebook back over notebooks/classification.ipynb, which must stay under MAX_NOTEBOOK_BYTES
for the repository's web page to show it.

    python scripts/report.py [--data-dir DIR] [--model-dir DIR] [--output-dir DIR] [--commit]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill
from jupyter_client.manager import KernelManager
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

CHECKOUT_DIR = Path(__file__).resolve().parent.parent
NOTEBOOK = CHECKOUT_DIR / "notebooks" / "classification.ipynb"
DATA_DIR = Path("../shared/data/voyage")
MODEL_DIR = Path("var/report/models")
OUTPUT_DIR = Path("reports")
KERNEL = "python3"
MAX_NOTEBOOK_BYTES = 2_000_000
# Metadata that changes on every run whatever the data: papermill's run and cell timings, and the
# kernel's execution timestamps.
VOLATILE_CELL_METADATA = ("papermill", "execution")
INJECTED_TAG = "injected-parameters"  # the tag of the cell papermill inserts with the parameters


class ReportError(Exception):
    """A cell failed, or the notebook came out too large: the message says which."""


def parameter(path: Path) -> str:
    """A directory as the notebook receives it: relative to the checkout, the kernel's working
    directory, so that a committed notebook names no machine's own paths."""
    return os.path.relpath(path.resolve(), CHECKOUT_DIR)


def cell_failure(error: PapermillExecutionError, executed: Path) -> ReportError:
    """One message naming the cell and its error, instead of the kernel's traceback."""
    lines = error.source.strip().splitlines()
    return ReportError(
        f"cell In [{error.exec_count}] (starting {lines[0] if lines else ''!r}) failed: "
        f"{error.ename}: {error.evalue} (the notebook up to that cell: {executed})"
    )


def settled(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The executed notebook without what changes on every run, and with the cell papermill inserts
    as the project's formatting has it (ruff lints and formats notebooks too)."""
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if INJECTED_TAG in cell.metadata.get("tags", []):
            cell.id = INJECTED_TAG  # papermill gives it a random one
            cell.source = cell.source.rstrip("\n")
    return notebook


def run(data_dir: Path, model_dir: Path, output_dir: Path) -> Path:
    """Execute the notebook into output_dir; returns the executed notebook's path (its HTML beside it).

    On a failed cell the executed notebook is still written, to show where it stopped.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / NOTEBOOK.name
    source = nbformat.read(NOTEBOOK, as_version=4)
    # The committed notebook holds the last run's outputs: none of them may survive into this run.
    for cell in source.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # IPC: the kernel's sockets are files in a directory of this process's own, not loopback ports
    # that any local process could reach. Papermill leaves a kernel it was given running: stop it here.
    with tempfile.TemporaryDirectory(prefix="report-kernel-") as sockets:
        kernel = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            papermill.execute_notebook(
                source,
                str(executed),
                parameters={
                    "data_dir": parameter(data_dir),
                    "model_dir": parameter(model_dir),
                    "output_dir": parameter(output_dir),
                },
                kernel_name=KERNEL,
                km=kernel,
                progress_bar=False,
                cwd=str(CHECKOUT_DIR),
            )
        except PapermillExecutionError as error:
            raise cell_failure(error, executed) from None
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel()
    notebook = settled(nbformat.read(executed, as_version=4))
    nbformat.write(notebook, executed)
    html, _ = HTMLExporter().from_notebook_node(notebook)
    executed.with_suffix(".html").write_text(html, encoding="utf-8")
    return executed


def check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise ReportError(
            f"{path} is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,} the repository's page shows:"
            " draw fewer or smaller figures"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, meaning in (
        ("--data-dir", DATA_DIR, "users.csv, and hotels.csv / flights.csv when there are some"),
        ("--model-dir", MODEL_DIR, "the published model the report is about"),
        ("--output-dir", OUTPUT_DIR, "where the executed notebook, its HTML and its figures go"),
    ):
        parser.add_argument(flag, type=Path, default=default, help=f"{meaning} (default {default})")
    parser.add_argument(
        "--commit",
        action="store_true",
        help=f"also write the executed notebook over {NOTEBOOK.relative_to(CHECKOUT_DIR)}",
    )
    args = parser.parse_args(argv)
    try:
        executed = run(args.data_dir, args.model_dir, args.output_dir)
        check_size(executed)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"report: {executed} and {executed.with_suffix('.html')}")
    if args.commit:
        NOTEBOOK.write_bytes(executed.read_bytes())
        print(f"report: {NOTEBOOK.relative_to(CHECKOUT_DIR)} holds this run's outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

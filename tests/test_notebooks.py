"""Notebook hygiene (style habits 7, 9, 11): parameters cell, narration, no logic in cells, small files."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return nbformat.read(request.param, as_version=4), request.param


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def test_first_code_cell_is_literal_parameters(notebook):
    nb, path = notebook
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell is not tagged parameters"
    tree = ast.parse(first.source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell holds only assignments"
        ast.literal_eval(node.value)  # literals only, so papermill can override them
        names |= {t.id for t in node.targets}
    assert {"backbone", "device"} <= names


def test_narrated_and_free_of_definitions(notebook):
    nb, path = notebook
    md = sum(c.cell_type == "markdown" for c in nb.cells)
    assert md / len(nb.cells) >= 0.4, f"{path.name}: fewer than 40% markdown cells"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert i > 0 and nb.cells[i - 1].cell_type == "markdown", f"{path.name}: code cell {i} has no text before it"
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        # A cell tagged "mechanism" shows a mechanism on purpose (e.g. a hand-written attention processor) and
        # checks itself against the package in the cells after it; any other definition belongs in zsnb/.
        shown = "mechanism" in cell.metadata.get("tags", [])
        assert shown or not defs, f"{path.name}: cell {i} defines {defs[0].name}; move it into zsnb/"
        assert not any(line.lstrip().startswith(("!", "%")) for line in cell.source.splitlines())


def test_committed_with_outputs_and_small(notebook):
    nb, path = notebook
    assert path.stat().st_size < 2 * 2**20, f"{path.name} is over 2 MB"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path.name} is not committed executed"


def test_figures_of_other_runs_leave_figures_alone(notebook):
    """Each notebook routes its figures by run (viz.use_figures_for): figures/ only for the default one."""
    nb, path = notebook
    assert any("use_figures_for(backbone, weights)" in c.source for c in nb.cells if c.cell_type == "code"), \
        f"{path.name}: its setup cell does not call viz.use_figures_for(backbone, weights)"

"""Every lesson has the parts a reader relies on (read from the notebook files, nothing executed)."""

from __future__ import annotations

import json

import pytest

from palr_utils.runner import NOTEBOOKS, present_notebooks


def _cells(stem: str) -> list[tuple[str, str]]:
    notebook = json.loads(next(p for p in present_notebooks() if p.stem == stem).read_text())
    return [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_lesson_has_goals_core_code_a_summary_and_exercises(stem):
    cells = _cells(stem)
    markdown = [text for kind, text in cells if kind == "markdown"]
    code = [text for kind, text in cells if kind == "code"]
    assert "**In this notebook you will**" in markdown[0], "learning goals in the first cell"
    assert any("## Summary" in text for text in markdown), "a summary"
    assert any("## Exercises" in text for text in markdown), "exercises"
    assert any(text.startswith("show_source(") for text in code), "a cell that shows the core code it teaches"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_lessons_are_committed_without_outputs(stem):
    notebook = json.loads(next(p for p in present_notebooks() if p.stem == stem).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None

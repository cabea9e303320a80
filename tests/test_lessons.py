"""Every lesson has the parts a reader relies on (read from the notebook files, nothing executed)."""

from __future__ import annotations

import json
import re

import papermill
import pytest

from palr_utils.course.runner import NOTEBOOKS, present_notebooks


def _cells(stem: str) -> list[tuple[str, str]]:
    notebook = json.loads(next(p for p in present_notebooks() if p.stem == stem).read_text())
    return [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_lesson_has_goals_core_code_a_summary_and_exercises(stem):
    cells = _cells(stem)
    markdown = [text for kind, text in cells if kind == "markdown"]
    code = [text for kind, text in cells if kind == "code"]
    opening = [text for kind, text in cells[: next(i for i, (kind, _) in enumerate(cells) if kind == "code")]]
    assert opening[0].startswith("# "), "a title first"
    assert any("**In this notebook you will**" in text for text in opening), "learning goals before any code"
    assert any("## Summary" in text for text in markdown), "a summary"
    assert any("## Exercises" in text for text in markdown), "exercises"
    assert any(text.startswith("show_source(") for text in code), "a cell that shows the core code it teaches"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_papermill_reads_every_parameter_of_every_lesson(stem):
    # papermill drops a line it cannot parse (an "=" in a comment is enough) and then calls the value it
    # injects an unknown parameter: the runner works, the notebook's own defaults are no longer declared
    notebook = next(p for p in present_notebooks() if p.stem == stem)
    declared = set(papermill.inspect_notebook(str(notebook)))
    assert {"PROFILE", "DATASET", "DATA_DIR", "ARTIFACT_DIR", "SEED", "OVERRIDES"} <= declared


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_lessons_are_committed_without_outputs(stem):
    notebook = json.loads(next(p for p in present_notebooks() if p.stem == stem).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None


# --- publishing an executed run as lessons (palr_utils.course.lessons, `make lessons`) -------------------------------


def _executed(source: str, output: str, count: int | None = 1, error: bool = False) -> dict:
    outputs = [{"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}] if error else [
        {"output_type": "stream", "name": "stdout", "text": [output]}
    ]
    return {
        "cells": [{"cell_type": "code", "source": [source], "execution_count": count, "outputs": outputs,
                   "metadata": {}}],
        "metadata": {"papermill": {"parameters": {"PROFILE": "cpu", "DATASET": "custom", "SEED": 42,
                                                  "DATA_DIR": "/home/me/data/beauty"}}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip


def _run_folder(tmp_path, notebooks: dict[str, dict], metrics: dict[str, dict] | None = None):
    artifact_dir = tmp_path / "run"
    (artifact_dir / "executed").mkdir(parents=True)
    (artifact_dir / "metrics").mkdir()
    for stem, notebook in notebooks.items():
        (artifact_dir / "executed" / f"{stem}.ipynb").write_text(json.dumps(notebook))
    for stem, values in (metrics or {}).items():
        (artifact_dir / "metrics" / f"{stem}.json").write_text(json.dumps(values))
    return artifact_dir


def test_published_lessons_keep_outputs_hide_machine_paths_and_list_what_ran(tmp_path):
    from palr_utils.course.lessons import publish_lessons

    artifact_dir = _run_folder(tmp_path, {})
    printed = f"artifacts : {artifact_dir}/x\ndata dir  : /home/me/data/beauty\n"
    (artifact_dir / "executed" / "01_preprocessing.ipynb").write_text(json.dumps(_executed("print(1)", printed)))
    (artifact_dir / "metrics" / "01_preprocessing.json").write_text(json.dumps({"n_users": 22363}))
    written = publish_lessons(artifact_dir, tmp_path / "lessons")
    lesson = json.loads((tmp_path / "lessons" / "01_preprocessing.ipynb").read_text())
    text = "".join(lesson["cells"][0]["outputs"][0]["text"])
    assert text == "artifacts : <ARTIFACT_DIR>/x\ndata dir  : <DATA_DIR>\n"
    index = (tmp_path / "lessons" / "README.md").read_text()
    assert "[01_preprocessing](01_preprocessing.ipynb) | executed | n_users 22,363" in index
    assert "| 05_evaluation | not run yet |" in index and "PROFILE=cpu, DATASET=custom, SEED=42" in index
    assert [p.name for p in written] == ["01_preprocessing.ipynb", "README.md"]


def test_published_lessons_links_reach_the_files_the_notebooks_link(tmp_path, monkeypatch):
    import palr_utils.course.lessons as lessons

    repo = tmp_path / "repo"  # a repository of its own: notebooks/, the files they link, lessons/<data>/
    for path in ("notebooks", "docs/teaching.md", "exercises/README.md"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).mkdir() if path == "notebooks" else (repo / path).write_text("x")
    monkeypatch.setattr(lessons, "project_root", lambda: repo)
    notebook = _executed("print(1)", "1\n")
    text = ("See [the glossary](../docs/teaching.md#words-the-lessons-use), [solutions](../exercises/README.md),\n"
            "[the paper](https://arxiv.org/abs/2305.07622) and [below](#summary).")
    notebook["cells"].insert(0, {"cell_type": "markdown", "source": text.splitlines(keepends=True), "metadata": {}})
    artifact_dir = _run_folder(tmp_path, {"01_preprocessing": notebook})
    out_dir = repo / "lessons" / "ml-1m"  # a folder deeper than notebooks/
    lessons.publish_lessons(artifact_dir, out_dir)
    cell = json.loads((out_dir / "01_preprocessing.ipynb").read_text())["cells"][0]
    assert isinstance(cell["source"], list) and len(cell["source"]) == 2  # lines, as Jupyter writes them
    published = "".join(cell["source"])
    assert published == text.replace("](../", "](../../")  # anchors, URLs and in-page links as they were
    # outside the repository no relative link reaches its files: the text is left as written
    lessons.publish_lessons(artifact_dir, tmp_path / "elsewhere")
    elsewhere = json.loads((tmp_path / "elsewhere" / "01_preprocessing.ipynb").read_text())["cells"][0]
    assert "".join(elsewhere["source"]) == text


def test_relative_links_of_the_committed_docs_and_lessons_resolve():
    from palr_utils.core.paths import project_root

    root, broken = project_root(), []
    pages = [*root.glob("*.md"), root / "data" / "README.md"]  # data/ also holds downloads: its README only
    for folder in ("docs", "exercises", "lessons"):
        pages += (root / folder).rglob("*.md")
    texts = [(p, p.read_text(encoding="utf-8")) for p in pages]
    for folder in ("notebooks", "lessons"):
        for path in (root / folder).rglob("*.ipynb"):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            texts.append((path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    for path, text in texts:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)", text):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(root)}: {target}")
    assert not broken, broken


@pytest.mark.parametrize(
    "notebook, reason",
    [
        (_executed("1 / 0", "", error=True), "ended with an error"),
        (_executed("x = 1", "", count=None), "was not executed"),
    ],
)
def test_a_notebook_that_failed_or_stopped_is_not_published(tmp_path, notebook, reason):
    from palr_utils.course.lessons import publish_lessons

    finished = _executed("print(1)", "1\n")
    artifact_dir = _run_folder(tmp_path, {"01_preprocessing": finished, "02_user_profiles": notebook})
    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "02_user_profiles.ipynb").write_text("{}")  # a copy from an earlier publication
    written = publish_lessons(artifact_dir, tmp_path / "lessons")
    assert [p.name for p in written] == ["01_preprocessing.ipynb", "README.md"]
    assert not (tmp_path / "lessons" / "02_user_profiles.ipynb").exists()
    assert f"| 02_user_profiles | not published: cell 0 {reason}" in (tmp_path / "lessons" / "README.md").read_text()


def test_publishing_a_run_that_never_ran_says_what_to_do(tmp_path):
    from palr_utils.course.lessons import LessonNotReady, publish_lessons

    with pytest.raises(LessonNotReady, match="run the pipeline first"):
        publish_lessons(tmp_path / "nothing", tmp_path / "lessons")


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_exercise_is_graded_hinted_and_solved(stem):
    import re

    from palr_utils.core.paths import project_root
    from palr_utils.course.lessons import solution_blocks

    text = next(text for kind, text in _cells(stem) if kind == "markdown" and "## Exercises" in text)
    exercises = re.findall(r"^\d+\. (★+) ", text.split("## Exercises")[1], flags=re.M)
    assert 2 <= len(exercises) <= 4, "two to four exercises"
    assert text.count("*Hint:*") == len(exercises), "a hint under every exercise"
    solutions = project_root() / "exercises" / "solutions" / f"{stem}.md"
    assert f"(../exercises/solutions/{stem}.md)" in text and solutions.exists(), "a link to the worked solutions"
    headings = re.findall(r"^## (\d+)\. (★+) ", solutions.read_text(), flags=re.M)
    assert [marks for _, marks in headings] == exercises, "one solution per exercise, graded alike"
    assert len(solution_blocks(solutions)) == len(exercises), "runnable code for every solution"
    # what a student writes for a ★ exercise: "5-10 lines" (exercises/README.md), after the file's setup block
    own = [b for b in re.findall(r"^```python\n(.*?)^```", solutions.read_text(), flags=re.M | re.S)
           if not b.startswith("# setup")]  # fmt: skip
    for (number, marks), block in zip(headings, own, strict=True):
        code = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert marks != "★" or len(code) <= 10, f"★ solution {number} has {len(code)} lines of code, more than 10"


def _prose_words(markdown: str) -> int:
    """Words a reader reads: a link's target and a code span count as nothing and one word."""
    import re

    return len(re.sub(r"`[^`]*`", "code", re.sub(r"\]\([^)]*\)", "]", markdown)).split())


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_markdown_cell_holds_one_idea_in_about_120_words(stem):
    cells = enumerate(_cells(stem))
    long = [(i, n) for i, (kind, text) in cells if kind == "markdown" and (n := _prose_words(text)) > 130]
    assert not long, f"markdown cells (index, words) longer than about 120 words: {long}"

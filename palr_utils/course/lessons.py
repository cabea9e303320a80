"""Publish the executed notebooks of a recorded run as lessons a student can read without running them.

Usage::

    make lessons            # every recorded run below that is on disk
    python -m palr_utils.course.lessons --artifact-dir artifacts/cpu/beauty-custom --out lessons/beauty

``notebooks/`` stays free of outputs (clean diffs); the copies under ``lessons/<data>/`` keep every output
and figure, so GitHub renders a lesson with its numbers. A notebook is published only when the run executed
it to the end without an error. Machine paths in outputs (the repository's folder, the data folder) are
replaced by readable placeholders, the text's relative links are pointed at the same files from the lessons'
folder, and an index (``README.md``) lists the lessons with their headline numbers and the run they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from palr_utils.core.constants import METRICS_DIR, NOTEBOOKS
from palr_utils.core.io import atomic_path, headline, read_metrics
from palr_utils.core.paths import project_root

# The recorded `cpu` runs (benchmarks/pipeline_ml1m.py, once per data set) and where their lessons go
RECORDED_RUNS = {
    "lessons/ml-1m": "artifacts/cpu/ml-1m-custom",
    "lessons/beauty": "artifacts/cpu/beauty-custom",
}


class LessonNotReady(ValueError):
    """An executed notebook that cannot be published as it stands; the message says why and what to run."""


def _strings(node):
    """Every string inside a notebook's JSON (sources, outputs, metadata), with a setter to rewrite it."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        if isinstance(value, str):
            yield node, key, value
        else:
            yield from _strings(value)


def check_executed(notebook: dict, name: str) -> None:
    """Refuse a notebook that was not executed to its end: a code cell without an execution count (never run,
    or the run stopped before it), or one whose outputs hold an error."""
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            raise LessonNotReady(f"{name}: cell {index} ended with an error; fix it and run the notebook again")
        if cell.get("execution_count") is None and "".join(cell.get("source", "")).strip():
            raise LessonNotReady(
                f"{name}: cell {index} was not executed (the run stopped before it); run the notebook to its end"
            )


def scrub_paths(notebook: dict, replacements: dict[str, str]) -> int:
    """Replace machine-specific paths in every string of the notebook, longest first; returns how many strings
    changed. The executed copy names folders of the machine that ran it, which mean nothing to a reader."""
    ordered = sorted(((old, new) for old, new in replacements.items() if old), key=lambda pair: -len(pair[0]))
    changed = 0
    for parent, key, text in list(_strings(notebook)):
        new_text = text
        for old, new in ordered:
            new_text = new_text.replace(old, new)
        if new_text != text:
            parent[key] = new_text
            changed += 1
    return changed


# a Markdown link's target: what follows "](" up to an optional "#anchor" and the closing parenthesis
_LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def relink(notebook: dict, out_dir: str | Path) -> int:
    """Point the relative links of the markdown cells, written from ``notebooks/``, at the same files from
    ``out_dir``; returns how many changed. A lesson published to ``lessons/<data>/`` sits a folder deeper, so
    ``../docs/teaching.md`` would otherwise name a file that does not exist. Outside the repository no relative
    link can reach its files (and one through this machine's folders would mean nothing elsewhere): nothing
    changes there. Apply it once, to a copy of a notebook of ``notebooks/``."""
    root, out_dir = project_root().resolve(), Path(out_dir).resolve()
    if not out_dir.is_relative_to(root):
        return 0
    notebooks_dir = root / "notebooks"

    def moved(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):  # a URL or an absolute path
            return match[0]
        new = Path(os.path.relpath((notebooks_dir / target).resolve(), out_dir)).as_posix()
        return f"]({new}{match['anchor'] or ''})"

    changed = 0
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell.get("source", ""))
        new_text = _LINK.sub(moved, text)
        if new_text != text:  # kept as lines, as Jupyter writes it
            cell["source"] = new_text.splitlines(keepends=True) if isinstance(cell["source"], list) else new_text
            changed += 1
    return changed


def _run_parameters(notebook: dict) -> dict:
    """The parameters papermill injected (PROFILE, DATASET, ...), from the executed notebook's metadata."""
    return notebook.get("metadata", {}).get("papermill", {}).get("parameters", {})


def publish_lessons(artifact_dir: str | Path, out_dir: str | Path, notebooks: list[str] | None = None) -> list[Path]:
    """Copy the executed notebooks of ``artifact_dir/executed`` to ``out_dir`` with an index; returns the files
    written. Notebooks the run has not reached, or did not finish (an error, an interruption), are left out and
    the index says why."""
    artifact_dir, out_dir = Path(artifact_dir).resolve(), Path(out_dir)
    executed_dir = artifact_dir / "executed"
    if not executed_dir.is_dir():
        raise LessonNotReady(
            f"{executed_dir} does not exist: run the pipeline first (make tutorial ... ARTIFACT_DIR={artifact_dir})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written, rows, parameters = [], [], {}
    for stem in notebooks or NOTEBOOKS:
        source = executed_dir / f"{stem}.ipynb"
        if not source.exists():
            rows.append(f"| {stem} | not run yet | |")
            continue
        notebook = json.loads(source.read_text(encoding="utf-8"))
        try:
            check_executed(notebook, source.name)
        except LessonNotReady as reason:  # a failed or interrupted notebook is left out; the others still publish
            rows.append(f"| {stem} | not published: {str(reason).split(': ', 1)[1]} | |")
            (out_dir / source.name).unlink(missing_ok=True)  # never leave an older copy beside a newer index
            continue
        parameters = _run_parameters(notebook) or parameters
        data_dir = str(parameters.get("DATA_DIR", ""))
        scrub_paths(notebook, {
            str(artifact_dir): "<ARTIFACT_DIR>",
            data_dir: "<DATA_DIR>" if data_dir else "",
            str(project_root()): "<REPOSITORY>",
        })  # fmt: skip
        relink(notebook, out_dir)
        target = out_dir / source.name
        with atomic_path(target) as temporary:
            Path(temporary).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
        metrics = read_metrics(artifact_dir, stem) if (artifact_dir / METRICS_DIR / f"{stem}.json").exists() else {}
        rows.append(f"| [{stem}]({source.name}) | executed | {headline(metrics)} |")
    index = out_dir / "README.md"
    run = ", ".join(f"{k}={v}" for k, v in parameters.items() if k in ("PROFILE", "DATASET", "SEED"))
    with atomic_path(index) as temporary:
        Path(temporary).write_text(
            "# Executed lessons\n\n"
            f"The tutorial notebooks as the recorded run executed them ({run}), with every output and figure.\n"
            "Regenerate with `make lessons`; the notebooks to edit and run are in `notebooks/`.\n\n"
            "| lesson | status | headline numbers |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n",
            encoding="utf-8",
        )
    return [*written, index]


def solution_blocks(path: str | Path) -> list[str]:
    """The runnable Python blocks of a worked-solutions file (``exercises/solutions/*.md``), each complete: a
    block whose first line is ``# setup`` is put in front of every block after it (and is not one itself)."""
    blocks = re.findall(r"^```python\n(.*?)^```", Path(path).read_text(encoding="utf-8"), flags=re.M | re.S)
    setup, runnable = "", []
    for block in blocks:
        if block.startswith("# setup"):
            setup += block + "\n"
        else:
            runnable.append(setup + block)
    return runnable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", default="", help="the run's ARTIFACT_DIR (holds executed/)")
    parser.add_argument("--out", default="", help="where the lessons go, e.g. lessons/beauty")
    args = parser.parse_args()
    if bool(args.artifact_dir) != bool(args.out):
        parser.error("give both --artifact-dir and --out, or neither (then every recorded run on disk)")
    runs = {args.out: args.artifact_dir} if args.out else RECORDED_RUNS
    for out, artifact_dir in runs.items():
        if not args.out and not (project_root() / artifact_dir / "executed").is_dir():
            print(f"{artifact_dir}: no executed notebooks on this machine, skipped")
            continue
        for path in publish_lessons(project_root() / artifact_dir, project_root() / out):
            print(path)


if __name__ == "__main__":
    main()

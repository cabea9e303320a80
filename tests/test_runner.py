"""The notebook runner: progress lines, headline numbers, and a failure that says where, why and what next."""

from __future__ import annotations

import re

import nbformat
import pytest

from palr_utils.core.io import headline
from palr_utils.course.runner import NotebookFailed, run_notebooks


def test_headline_prefers_test_ndcg_and_skips_flags():
    metrics = {"n_users": 40, "sasrec_test_ndcg@10": 0.25, "cached": True, "palr_rank_test_ndcg@10": 0.125}
    assert headline(metrics) == "sasrec_test_ndcg@10 0.25, palr_rank_test_ndcg@10 0.125"
    assert headline({"n_users": 40, "label": "x", "n_items": 60}) == "n_users 40, n_items 60"
    assert headline({"n_users": 22363, "seconds": 1.5}) == "n_users 22,363, seconds 1.5"


def _notebook(path, *cells: str):
    source = 'PROFILE = "tiny"\nDATASET = ""\nDATA_DIR = ""\nARTIFACT_DIR = ""\nSEED = 42'
    parameters = nbformat.v4.new_code_cell(source)
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[parameters, *map(nbformat.v4.new_code_cell, cells)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.integration
def test_a_failing_notebook_is_summarised_with_its_log_and_the_command_that_resumes(tmp_path, capsys):
    quiet = _notebook(tmp_path / "00_first.ipynb", "import os\nassert os.environ['TQDM_DISABLE'] == '1'")
    failing = _notebook(tmp_path / "01_second.ipynb", "raise ValueError('items.tsv has no title column')")
    artifacts = tmp_path / "artifacts"
    with pytest.raises(NotebookFailed) as failure:
        run_notebooks("tiny", artifact_dir=str(artifacts), notebooks=[quiet, failing])
    message = str(failure.value)
    assert re.search(r"01_second stopped in cell \[\d+\] with ValueError: items.tsv has no title column", message)
    assert "START_AT=01_second" in message and str(artifacts / "executed" / "01_second.ipynb") in message
    log = artifacts / "executed" / "01_second.error.log"
    assert "Traceback" in log.read_text() or "ValueError" in log.read_text()
    assert "[1/2] 00_first" in capsys.readouterr().out  # the first notebook ran, in a kernel without bars
    with pytest.raises(ValueError, match="start_at"):
        run_notebooks("tiny", artifact_dir=str(artifacts), notebooks=[quiet], start_at="99_missing")

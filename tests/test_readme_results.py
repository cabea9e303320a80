"""The README's results tables say only what the recorded pipelines measured and what the paper printed.

Each of our (HR@10, NDCG@10) pairs must be one method's pair in that data set's recorded pipeline
(`benchmarks/results/pipeline_*_cpu.json`, notebooks 03 and 05) at the precision the README prints, and each
paper cell must be that model's cell of Table 2 (`palr_utils.core.paper`). A number typed by hand, or left behind by an
earlier run, fails here.
"""

from __future__ import annotations

import json
import re

import pytest

from palr_utils.core.paper import PAPER_TABLE_2
from palr_utils.core.paths import project_root

ROOT = project_root()
# The README's bold heading of each table -> (Table 2's name of the data set, the recorded pipeline)
TABLES = {
    "Amazon Beauty": ("beauty", "pipeline_beauty_cpu.json"),
    "MovieLens-1M": ("ml-1m", "pipeline_ml1m_cpu.json"),
}
# How a row of the README names a model of Table 2 (its first words)
ROW_MODEL = {"BPR-MF": "bpr_mf", "NCF": "ncf", "GRU4Rec": "gru4rec", "Caser": "caser", "SASRec (full softmax": "sasrec",
             "PALR_v1": "palr_v1", "PALR_v2": "palr_v2"}  # fmt: skip


def readme_tables() -> dict[str, list[list[str]]]:
    """The rows (cells stripped of bold and italics) of each table under "## Results at a glance", by heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in section.splitlines():
        if match := re.match(r"\*\*(.+?)\*\* \(", line):
            heading = match.group(1)
        elif line.startswith("| ") and heading and not line.startswith(("| model", "| ---")):
            tables.setdefault(heading, []).append([cell.strip().strip("*") for cell in line.strip("|").split("|")])
    return tables


def recorded_pairs(pipeline_file: str) -> dict[tuple[str, str], str]:
    """Every method's (HR@10, NDCG@10) in a recorded pipeline, as full-precision strings -> the method."""
    record = json.loads((ROOT / "benchmarks" / "results" / pipeline_file).read_text())
    pairs = {}
    for stage in ("03_sasrec_retrieval", "05_evaluation"):
        metrics = record["notebooks"][stage]["metrics"]
        for key, hr in metrics.items():
            if key.endswith("_test_hr@10"):
                method = key.removesuffix("_test_hr@10")
                pairs[(hr, metrics[f"{method}_test_ndcg@10"])] = method
    return pairs


def shown(value: float, like: str) -> str:
    """``value`` at the number of decimals of the printed cell ``like``."""
    return f"{value:.{len(like.split('.')[1])}f}"


def test_the_readme_has_one_results_table_per_data_set_of_the_paper():
    assert sorted(readme_tables()) == sorted(TABLES)


@pytest.mark.parametrize("heading", sorted(TABLES))
def test_every_number_of_ours_in_a_readme_table_is_one_method_s_recorded_pair(heading):
    pairs = recorded_pairs(TABLES[heading][1])
    for name, hr, ndcg, _ in readme_tables()[heading]:
        found = [m for (h, n), m in pairs.items() if (shown(h, hr), shown(n, ndcg)) == (hr, ndcg)]
        assert found, f"README row {name!r}: {hr} / {ndcg} is no method's pair in {TABLES[heading][1]}"


@pytest.mark.parametrize("heading", sorted(TABLES))
def test_every_paper_cell_is_filled_and_is_table_2_s_cell_for_that_model(heading):
    dataset = TABLES[heading][0]
    filled = set()
    for name, _, _, paper in readme_tables()[heading]:
        model = next((key for prefix, key in ROW_MODEL.items() if name.startswith(prefix)), None)
        if paper:
            assert model, f"README row {name!r} has a paper cell but names no model of Table 2"
            assert paper == "{:.4f} / {:.4f}".format(*PAPER_TABLE_2[(dataset, model)]), name
            filled.add(model)
    reported = {model for (name, model), cell in PAPER_TABLE_2.items() if name == dataset and cell[0] is not None}
    assert filled == reported, f"{heading}: Table 2's cells for {sorted(reported - filled)} are missing"

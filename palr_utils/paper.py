"""Numbers reported in the PALR paper (Chen et al., 2023, Table 2), for side-by-side tables.

Only values we have checked are filled in; ``None`` marks a cell still to be
copied from the paper (we never fill a cell with a guess).
Protocol in the paper: leave-one-out, HR@10 / NDCG@10 under full ranking.
"""

from __future__ import annotations

import pandas as pd

# (dataset, model) -> (HR@10, NDCG@10)
PAPER_TABLE_2: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("ml-1m", "popularity"): (None, None),
    ("ml-1m", "bpr_mf"): (None, None),
    ("ml-1m", "ncf"): (None, None),
    ("ml-1m", "gru4rec"): (None, None),
    ("ml-1m", "caser"): (None, None),
    ("ml-1m", "sasrec"): (0.1978, 0.1192),
    ("ml-1m", "palr_v1"): (None, None),
    ("ml-1m", "palr_v2"): (0.2110, 0.1276),
}


def paper_rows(dataset: str) -> pd.DataFrame:
    """The paper's HR@10 / NDCG@10 for ``dataset`` (custom ml-1m copies count as ml-1m), indexed by model."""
    rows = {model: values for (name, model), values in PAPER_TABLE_2.items() if name == dataset}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["paper_hr@10", "paper_ndcg@10"])


def compare_with_paper(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Join our test metrics (index: model; columns test_hr@10, test_ndcg@10) with the paper's."""
    return results.join(paper_rows(dataset), how="left")

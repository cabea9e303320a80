"""Fusion: the retriever's log-softmax plus a weight times the LLM's, the weight chosen on
validation users; paired bootstrap intervals of each method's NDCG@10 minus SASRec's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from palr_utils.core.constants import USER
from palr_utils.core.metrics import log_softmax, ndcg_per_user, paired_bootstrap_ci, ranking_metrics
from palr_utils.evaluation.cases import EvalCase, fixed_order_records


def fusion_scores(retriever_scores: np.ndarray, llm_log_probs: np.ndarray, weight: float) -> np.ndarray:
    """The retriever's log-softmax over the K candidates plus ``weight`` times the LLM's log-probabilities
    (PALR-rank's, or PALR_v2's letters'), both in the listed order. ``weight=0`` is the retriever alone."""
    return log_softmax(retriever_scores) + weight * np.asarray(llm_log_probs, dtype=np.float64)


def fused_records(cases: list[EvalCase], llm_records: pd.DataFrame, weight: float) -> pd.DataFrame:
    """Rank each case by the retriever's log-softmax plus ``weight`` x the LLM's letter log-probabilities
    (``llm_records`` from :meth:`Reranker.score_rank`, one row per case's user)."""
    llm = llm_records.set_index(USER)
    orders = []
    for case in cases:
        scores = fusion_scores(np.asarray(case.listed_scores), np.asarray(llm.loc[case.user, "log_probs"]), weight)
        orders.append([case.listed[j] for j in np.argsort(-scores, kind="stable")])
    records = fixed_order_records(cases, orders)
    if "seconds" in llm:  # fusion costs the LLM's pass; adding the retriever's scores is free
        records["seconds"] = llm.loc[[c.user for c in cases], "seconds"].to_numpy()
    return records


def choose_fusion_weight(
    cases: list[EvalCase], llm_records: pd.DataFrame, weights: Sequence[float]
) -> tuple[float, pd.DataFrame]:
    """The weight with the best NDCG@10 on ``cases`` (use validation cases: never test), and the whole curve.
    Ties go to the smaller weight: the retriever alone unless the LLM earns more."""
    curve = pd.DataFrame([
        {"weight": w, "ndcg@10": ranking_metrics(fused_records(cases, llm_records, w)["rank"].to_numpy())["ndcg@10"]}
        for w in sorted(weights)
    ])  # fmt: skip
    best = curve.loc[curve["ndcg@10"].idxmax(), "weight"]
    return float(best), curve


def delta_intervals(
    records: dict[str, pd.DataFrame], baseline: str = "sasrec", n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """For every method but ``baseline``: the paired bootstrap 95% interval of its NDCG@10 minus the
    baseline's, over the users both ranked (``M_ndcg@10_delta_ci_low`` / ``_high``)."""
    base = records[baseline].set_index(USER)["rank"]
    out = {}
    for method, frame in records.items():
        if method == baseline:
            continue
        ranks = frame.set_index(USER)["rank"]
        users = ranks.index.intersection(base.index)
        low, high = paired_bootstrap_ci(
            ndcg_per_user(ranks.loc[users].to_numpy()), ndcg_per_user(base.loc[users].to_numpy()), n_resamples,
            seed=seed,
        )  # fmt: skip
        out[f"{method}_ndcg@10_delta_ci_low"], out[f"{method}_ndcg@10_delta_ci_high"] = low, high
    return out

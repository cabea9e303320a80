"""Notebook 05's evaluation: the same users, the same candidates, eight ways of ranking them.

* ``sasrec``       - the retriever's own top 10;
* ``shuffled``     - the candidates in the prompt's (random) order: chance, a floor for the re-rankers;
* ``palr_v1``      - PALR_v1 generates titles from the *Recommend* prompt (matched against the catalogue);
* ``palr_v2``      - PALR_v2 generates from the *Recommend_Retrieval* prompt with the retriever's top candidates
                     (the paper: 50; the preset's ``rerank_candidates``);
* ``palr_v2_fast`` - PALR_v2 scores every candidate's letter in one forward pass;
* ``palr_v2_fast_calibrated`` - the same, minus each letter's mean log-probability over validation prompts;
* ``palr_rank``    - PALR-rank, trained to rank (palr_utils.palr_rank): every candidate scored in one forward pass;
* ``palr_fused``   - the retriever's log-softmax plus w x PALR-rank's log-probabilities, w chosen on validation.

Every method but the retriever gets a paired bootstrap interval of its NDCG@10 minus SASRec's on the same users.

A held-out item missing from a method's final 10 is a miss; there is no blending with retriever metrics.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from palr_utils.core.cache import resumable_map
from palr_utils.core.constants import USER
from palr_utils.core.metrics import ndcg_per_user, ranking_metrics
from palr_utils.evaluation.cases import EvalCase, K, cases_fingerprint, fixed_order_records
from palr_utils.finetune.sft import adapter_fingerprint

# Generation costs about a second per user on a CPU, so PALR_v1 and PALR_v2 rank a seeded subset of the users;
# SASRec on that subset, under this name, is the bar their rows must clear.
GENERATING_METHODS = ("palr_v1", "palr_v2")


SASREC_ON_GENERATION_USERS = "sasrec_generation_users"


# what the verdict calls each LLM-based ranking, in the order it lists them
METHOD_NAMES = {
    "palr_v2": "PALR_v2 (generation)",
    "palr_v2_fast": "PALR_v2, fast scoring",
    "palr_v2_fast_calibrated": "PALR_v2, calibrated fast scoring",
    "palr_rank": "PALR-rank",
    "palr_fused": "SASRec + PALR-rank",
    "palr_v1": "PALR_v1",
}


def same_users_baseline(method: str) -> str:
    """The SASRec row that ranked the same users as ``method``."""
    if method in GENERATING_METHODS or method == SASREC_ON_GENERATION_USERS:  # the subset's own row: a 0
        return SASREC_ON_GENERATION_USERS
    return "sasrec"


# How answers are decoded, part of every re-ranking cache's identity: records decoded otherwise are refused.
DECODING = "greedy; PALR_v2's answer starts with a candidate letter and its period"


def rerank_identity(adapter_dir, preset, seed: int, cases: list[EvalCase]) -> dict:
    """What a re-ranking cache is checked against: the adapter's weights, the cases (the retriever's candidates
    feed every answer's back-fill) and every setting that shapes the prompts or the answers (``preset`` is a
    ``RunPreset``). Records of another adapter, candidate list or setting are refused."""
    return {
        "adapter": adapter_fingerprint(adapter_dir),
        "cases": cases_fingerprint(cases),
        "decoding": DECODING,
        "n_candidates": preset.rerank_candidates,
        "n_history": preset.instructions.n_history,
        "max_new_tokens": preset.rerank_max_new_tokens,
        "seed": seed,
    }


def run_method(
    method, cases: list[EvalCase], cache_path, batch_size: int, identity: dict | None = None,
    sort_by: Callable[[EvalCase], int] | None = None,
) -> pd.DataFrame:
    """Run one re-ranking method over all cases with a resumable per-user cache.

    ``identity`` (the adapter's fingerprint, the settings) guards the cache: records of another
    adapter or another candidate list length are never mixed into this run's. ``sort_by`` (a case's length,
    e.g. ``Reranker.text_length``) batches cases of similar length together: less padding, same records.
    """
    return resumable_map(
        [c.user for c in cases],
        cases,
        method,
        cache_path,
        key=USER,
        batch_size=batch_size,
        desc=str(cache_path.stem),
        identity=identity,
        sort_by=sort_by,
    )


def retriever_records(cases: list[EvalCase]) -> pd.DataFrame:
    """The retriever's own top 10 as a method (no LLM)."""
    return fixed_order_records(cases, [c.retrieved for c in cases])


def shuffled_records(cases: list[EvalCase]) -> pd.DataFrame:
    """The first 10 candidates in the prompt's shuffled order: chance, the floor every re-ranker must clear."""
    return fixed_order_records(cases, [c.listed for c in cases])


def ndcg_by_group(records: dict[str, pd.DataFrame], groups: pd.Series) -> pd.DataFrame:
    """NDCG@10 of every method within each group of users (``groups``: a label per user id, e.g. a tercile of
    history length), with the group's size: where a re-ranker helps and where it hurts."""
    table = {}
    for method, frame in records.items():
        ranks = frame.set_index(USER)["rank"]
        per_user = pd.Series(ndcg_per_user(ranks.to_numpy()), index=ranks.index)
        table[method] = per_user.groupby(groups.reindex(per_user.index), observed=True).mean()
    out = pd.DataFrame(table)
    out.insert(0, "users", groups.value_counts().reindex(out.index))
    return out


def summarize(method: str, records: pd.DataFrame) -> dict[str, float]:
    """HR@10, NDCG@10 and, for generated answers, parse, hallucination, seen-item and letter/title disagreement
    rates; seconds per user."""
    out = {f"{method}_test_{k}": v for k, v in ranking_metrics(records["rank"].to_numpy(), ks=(K,)).items()}
    # records read from another method's pass (fast scoring from generation's first step) cost nothing more and
    # have no seconds of their own; none with seconds: the method cost nothing beyond the passes it read
    seconds = records["seconds"].dropna()
    out[f"{method}_seconds_per_user"] = float(seconds.mean()) if len(seconds) else 0.0
    if "n_lines" in records:
        lines = records["n_lines"].sum()
        out[f"{method}_parse_rate"] = float((records["n_matched"] > 0).mean())
        out[f"{method}_hallucination_rate"] = float(records["n_hallucinated"].sum() / lines) if lines else 0.0
        if "n_seen" in records:  # lines naming an item the user has seen (not counted as hallucinations)
            out[f"{method}_seen_rate"] = float(records["n_seen"].sum() / lines) if lines else 0.0
        if "n_disagreements" in records:  # lines whose letter and title name two different candidates
            out[f"{method}_disagreement_rate"] = float(records["n_disagreements"].sum() / lines) if lines else 0.0
    return out

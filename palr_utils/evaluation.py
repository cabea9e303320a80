"""Notebook 05's evaluation: the same users, the same candidates, eight ways of ranking them.

* ``sasrec``       - the retriever's own top 10;
* ``shuffled``     - the candidates in the prompt's (random) order: chance, a floor for the re-rankers;
* ``palr_v1``      - PALR_v1 generates titles from the *Recommend* prompt (matched against the catalogue);
* ``palr_v2``      - PALR_v2 generates from the *Recommend_Retrieval* prompt with the retriever's top candidates
                     (the paper: 50; the preset's ``rerank_candidates``);
* ``palr_v2_fast`` - PALR_v2 scores every candidate's letter in one forward pass;
* ``palr_v2_fast_calibrated`` - the same, minus each letter's mean log-probability over validation prompts;
* ``palr_rank``    - PALR-rank, trained to rank (palr_utils.ranking): every candidate scored in one forward pass;
* ``palr_fused``   - the retriever's log-softmax plus w x PALR-rank's log-probabilities, w chosen on validation.

Every method but the retriever gets a paired bootstrap interval of its NDCG@10 minus SASRec's on the same users.

A held-out item missing from a method's final 10 is a miss; there is no blending with retriever metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from palr_utils.cache import resumable_map
from palr_utils.constants import ITEM, SPLIT, TEST, USER, VALID
from palr_utils.finetune import adapter_fingerprint
from palr_utils.hashing import sha256_hex
from palr_utils.metrics import ndcg_per_user, paired_bootstrap_ci, ranking_metrics
from palr_utils.ranking import fusion_scores
from palr_utils.rerank import EvalCase, K, rank_in_list
from palr_utils.retrieval.candidates import RANK, SCORE
from palr_utils.retrieval.sequences import SequenceData

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
    return SASREC_ON_GENERATION_USERS if method in GENERATING_METHODS else "sasrec"


def build_cases(
    data: SequenceData, candidates: pd.DataFrame, users: Sequence[int], keywords: dict[int, list[str]],
    n_history: int, seed: int, n_candidates: int | None = None, split: str = TEST,
) -> list[EvalCase]:  # fmt: skip
    """One :class:`EvalCase` per user from notebook 03's candidates (the best ``n_candidates``) for ``split``:
    test cases are evaluated; validation cases (history one item shorter, target the validation item) serve
    choices made before testing, such as the letter prior of calibrated fast scoring."""
    if split not in (VALID, TEST):
        raise ValueError(f"split must be {VALID!r} or {TEST!r}, not {split!r}")
    split_rows = candidates[candidates[SPLIT] == split].sort_values([USER, RANK])
    retrieved = {int(u): g[ITEM].astype(int).tolist()[:n_candidates] for u, g in split_rows.groupby(USER)}
    scored = {int(u): dict(zip(g[ITEM].astype(int), g[SCORE].astype(float), strict=True))
              for u, g in split_rows.groupby(USER)}  # fmt: skip
    missing = [int(u) for u in users if int(u) not in retrieved]
    if missing:
        raise ValueError(
            f"{len(missing)} evaluated users (e.g. {missing[:3]}) have no {split} candidates; "
            "rerun notebook 03 so that candidates.parquet covers every user"
        )
    targets = data.targets(np.arange(data.n_users), split)
    cases = []
    for user in map(int, users):
        history = data.history(user, split)
        rng = np.random.default_rng([seed, 5, user])  # per user, so a resumed run lists the same order
        listed = [int(i) for i in rng.permutation(retrieved[user])]
        cases.append(EvalCase(
            user=user, target=int(targets[user]), history=[int(i) for i in history[-n_history:]],
            retrieved=retrieved[user], listed=listed, seen=set(map(int, history)),
            keywords=list(keywords.get(user, [])), listed_scores=[scored[user][i] for i in listed],
        ))  # fmt: skip
    return cases


def cases_fingerprint(cases: list[EvalCase]) -> str:
    """A short hash of the cases: users, histories, targets and candidate lists (new candidates, new hash)."""
    rows = (json.dumps([c.user, c.target, c.history, c.retrieved, c.listed], default=int) for c in cases)
    return sha256_hex(rows, length=16)


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
    method, cases: list[EvalCase], cache_path, batch_size: int, identity: dict | None = None
) -> pd.DataFrame:
    """Run one re-ranking method over all cases with a resumable per-user cache.

    ``identity`` (the adapter's fingerprint, the settings) guards the cache: records of another
    adapter or another candidate list length are never mixed into this run's.
    """
    return resumable_map(
        [c.user for c in cases],
        cases,
        method,
        cache_path,
        USER,
        batch_size,
        desc=str(cache_path.stem),
        identity=identity,
    )


def retriever_records(cases: list[EvalCase]) -> pd.DataFrame:
    """The retriever's own top 10 as a method (no LLM)."""
    return _fixed_order_records(cases, [c.retrieved for c in cases])


def shuffled_records(cases: list[EvalCase]) -> pd.DataFrame:
    """The first 10 candidates in the prompt's shuffled order: chance, the floor every re-ranker must clear."""
    return _fixed_order_records(cases, [c.listed for c in cases])


def _fixed_order_records(cases: list[EvalCase], orders: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame([
        {USER: c.user, "final": order[:K], "rank": rank_in_list(c.target, order[:K]), "seconds": 0.0}
        for c, order in zip(cases, orders, strict=True)
    ])  # fmt: skip


def fused_records(cases: list[EvalCase], llm_records: pd.DataFrame, weight: float) -> pd.DataFrame:
    """Rank each case by the retriever's log-softmax plus ``weight`` x the LLM's letter log-probabilities
    (``llm_records`` from :meth:`Reranker.score_rank`, one row per case's user)."""
    llm = llm_records.set_index(USER)
    orders = []
    for case in cases:
        scores = fusion_scores(np.asarray(case.listed_scores), np.asarray(llm.loc[case.user, "log_probs"]), weight)
        orders.append([case.listed[j] for j in np.argsort(-scores, kind="stable")])
    records = _fixed_order_records(cases, orders)
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


def rank_changes(case: EvalCase, before: Sequence[int], after: Sequence[int], k: int = K) -> pd.DataFrame:
    """The items of two top-``k`` lists of one user with their positions in each (1-based; absent: None),
    biggest promotions first; the held-out item is flagged."""
    before, after = list(before)[:k], list(after)[:k]
    position = lambda ranked, item: ranked.index(item) + 1 if item in ranked else None  # noqa: E731
    rows = [{ITEM: i, "before": position(before, i), "after": position(after, i), "held_out": i == case.target}
            for i in dict.fromkeys([*before, *after])]  # fmt: skip
    out = pd.DataFrame(rows)
    moved = out["before"].fillna(k + 1) - out["after"].fillna(k + 1)
    return out.assign(moved=moved).sort_values("moved", ascending=False, kind="stable").reset_index(drop=True)


def summarize(method: str, records: pd.DataFrame) -> dict[str, float]:
    """HR@10, NDCG@10 and, for generated answers, parse, hallucination, seen-item and letter/title disagreement
    rates; seconds per user."""
    out = {f"{method}_test_{k}": v for k, v in ranking_metrics(records["rank"].to_numpy(), ks=(K,)).items()}
    out[f"{method}_seconds_per_user"] = float(records["seconds"].mean())
    if "n_lines" in records:
        lines = records["n_lines"].sum()
        out[f"{method}_parse_rate"] = float((records["n_matched"] > 0).mean())
        out[f"{method}_hallucination_rate"] = float(records["n_hallucinated"].sum() / lines) if lines else 0.0
        if "n_seen" in records:  # lines naming an item the user has seen (not counted as hallucinations)
            out[f"{method}_seen_rate"] = float(records["n_seen"].sum() / lines) if lines else 0.0
        if "n_disagreements" in records:  # lines whose letter and title name two different candidates
            out[f"{method}_disagreement_rate"] = float(records["n_disagreements"].sum() / lines) if lines else 0.0
    return out

"""One user's evaluation case (history, target, candidates), built once and shared by every method."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from palr_utils.core.constants import ITEM, SPLIT, TEST, USER, VALID
from palr_utils.core.hashing import sha256_hex
from palr_utils.retrieval.candidates import RANK, SCORE
from palr_utils.retrieval.sequences import SequenceData


def rank_in_list(target: int, ranked: Sequence[int]) -> int:
    """0-based position of ``target`` in the final list; a large number when it is absent (a miss)."""
    ranked = list(ranked)
    return ranked.index(target) if target in ranked else 1_000_000


K = 10  # the length of every final list


@dataclass
class EvalCase:
    """Everything one user's re-ranking needs, built once and shared by every method."""

    user: int
    target: int
    history: list[int]  # the most recent items before the test item (training + validation)
    retrieved: list[int]  # the retriever's top candidates, best first
    listed: list[int]  # the same candidates in the order the prompt lists them (shuffled, seeded)
    seen: set[int]
    keywords: list[str]
    # the retriever's score of each candidate, in the order of ``listed`` (fusion adds them to the LLM's)
    listed_scores: list[float] = field(default_factory=list)


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


def fixed_order_records(cases: list[EvalCase], orders: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame([
        {USER: c.user, "final": order[:K], "rank": rank_in_list(c.target, order[:K]), "seconds": 0.0}
        for c, order in zip(cases, orders, strict=True)
    ])  # fmt: skip


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

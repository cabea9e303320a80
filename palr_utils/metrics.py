"""HR@K and NDCG@K under full ranking, one held-out target per user.

Full ranking: the target competes against *every* item in the catalogue, not
against 100 sampled negatives (sampled metrics can reorder models; Krichene &
Rendle, KDD 2020). Items the user has already interacted with are masked out,
since recommending them again is not the task.

Ties are broken pessimistically: the target ranks below every item with the
same score, so a model that gives all items one score earns nothing.
"""

from __future__ import annotations

import numpy as np
import torch


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of each user's target among all items (0 = top of the list).

    ``scores``: [users, items]; ``targets``: [users] item ids; ``seen``: bool
    [users, items], True where the item is masked (the target itself must not be).
    """
    scores = scores.float()
    if seen is not None:
        if seen.gather(1, targets[:, None]).any():
            raise ValueError("a target is marked as seen: the mask must not contain the held-out item")
        scores = scores.masked_fill(seen, float("-inf"))
    target_scores = scores.gather(1, targets[:, None])
    return (scores >= target_scores).sum(dim=1) - 1  # items at least as good, minus the target itself


def hit_rate_at_k(ranks: np.ndarray | torch.Tensor, k: int = 10) -> float:
    """Share of users whose target is in the top ``k``."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k))


def ndcg_at_k(ranks: np.ndarray | torch.Tensor, k: int = 10) -> float:
    """Mean NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top ``k``, else 0."""
    ranks = np.asarray(ranks, dtype=float)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def ranking_metrics(ranks: np.ndarray | torch.Tensor, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """{'hr@10': ..., 'ndcg@10': ...} for each k in ``ks``."""
    out = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    return out

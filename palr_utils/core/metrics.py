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


def log_softmax(scores) -> np.ndarray:
    """Scores over one short list -> log-probabilities over that list (shifted by the maximum, so large scores
    do not overflow). How the re-rankers' letter or Yes/No scores and the retriever's scores become comparable."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max()
    return shifted - np.log(np.exp(shifted).sum())


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


def ndcg_per_user(ranks: np.ndarray | torch.Tensor, k: int = 10) -> np.ndarray:
    """Each user's NDCG@k (0 outside the top ``k``): the per-user values a paired comparison resamples."""
    ranks = np.asarray(ranks, dtype=float)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def paired_bootstrap_ci(
    method: np.ndarray, baseline: np.ndarray, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Confidence interval of mean(method - baseline) over users, by resampling users with replacement.

    Both arrays hold one value per user, for the *same* users in the same order: pairing removes the
    variation between users that both methods share, so a small but consistent gain can be told from noise.
    The percentile interval of ``n_resamples`` bootstrap means; an interval above zero means the method is
    better at this level.
    """
    method, baseline = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
    if method.shape != baseline.shape or method.ndim != 1 or not len(method):
        raise ValueError(f"need two equally long, non-empty per-user arrays, got {method.shape} and {baseline.shape}")
    differences = method - baseline
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):  # 100 resamples at a time keeps memory small for many users
        stop = min(n_resamples, start + 100)
        picks = rng.integers(0, len(differences), size=(stop - start, len(differences)))
        means[start:stop] = differences[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)

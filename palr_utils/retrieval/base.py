"""The retriever interface: fit, score users, top-K with seen items masked, evaluate.

Any model that implements :meth:`Retriever.score` can feed PALR's re-ranking
stage; SASRec is the default.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod

import numpy as np
import torch

from palr_utils.core.metrics import ranking_metrics, target_ranks
from palr_utils.retrieval.sequences import SequenceData


class Retriever(ABC):
    """Scores every item for a user, given what the user did before the target of ``split``."""

    name: str = "retriever"
    data: SequenceData | None = None

    @abstractmethod
    def fit(self, data: SequenceData) -> Retriever:
        """Learn from ``data.train`` only (validation may be used for early stopping)."""

    @abstractmethod
    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        """Raw scores [len(users), n_items] before masking, on the model's device; subclasses implement this."""

    def _cpu_scores(self, users: np.ndarray, split: str) -> torch.Tensor:
        """:meth:`_score` in float32 on the CPU, where the masks and the metrics are computed."""
        return self._score(users, split).float().cpu()

    def _require_fitted(self) -> SequenceData:
        if self.data is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(data) first")
        return self.data

    @torch.no_grad()
    def score(self, users: np.ndarray, split: str) -> torch.Tensor:
        """Scores [len(users), n_items] for the given users; unknown users raise."""
        data = self._require_fitted()
        return self._cpu_scores(data.check_users(users), split)

    @torch.no_grad()
    def top_k(self, users: np.ndarray, k: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best unseen items per user and their scores, best first."""
        data = self._require_fitted()
        users = data.check_users(users)
        max_k = data.n_items - max(len(data.history(int(u), split)) for u in users)
        if k > max_k:
            warnings.warn(f"k={k} exceeds the {max_k} unseen items; using k={max_k}", stacklevel=2)
            k = max_k
        scores = self._cpu_scores(users, split).masked_fill(data.seen_mask(users, split), float("-inf"))
        values, items = scores.topk(k, dim=1)
        return items.numpy(), values.numpy()

    @torch.no_grad()
    def ranks(self, split: str, users: np.ndarray | None = None, batch_size: int = 512) -> np.ndarray:
        """0-based full-ranking rank of each user's ``split`` target (seen items masked)."""
        data = self._require_fitted()
        users = np.arange(data.n_users) if users is None else data.check_users(users)
        # users with histories of similar length share a batch, so a sequence model pads (and computes) less
        by_length = np.argsort([len(data.history(int(u), split)) for u in users], kind="stable")
        ranks = np.empty(len(users), dtype=np.int64)
        for start in range(0, len(users), batch_size):
            rows = by_length[start : start + batch_size]
            batch = users[rows]
            scores = self._cpu_scores(batch, split)
            targets = torch.as_tensor(data.targets(batch, split))
            ranks[rows] = target_ranks(scores, targets, data.seen_mask(batch, split)).numpy()
        return ranks

    def evaluate(self, split: str, ks: tuple[int, ...] = (10,), users: np.ndarray | None = None) -> dict[str, float]:
        """HR@k and NDCG@k on ``split`` ('valid' selects models, 'test' is reported)."""
        return ranking_metrics(self.ranks(split, users), ks)

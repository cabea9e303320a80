"""The simplest baseline: recommend what most users interacted with in training."""

from __future__ import annotations

import numpy as np
import torch

from palr_utils.retrieval.base import Retriever
from palr_utils.retrieval.sequences import SequenceData


class Popularity(Retriever):
    """Every user gets the same ranking: items by training interaction count."""

    name = "popularity"

    def fit(self, data: SequenceData) -> Popularity:
        counts = np.bincount(np.concatenate(data.train), minlength=data.n_items)
        self.counts = torch.as_tensor(counts, dtype=torch.float32)
        self.data = data
        return self

    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        return self.counts.expand(len(users), -1)

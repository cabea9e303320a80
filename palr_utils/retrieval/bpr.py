"""BPR-MF (Rendle et al., 2009): matrix factorisation trained to rank a seen item above an unseen one.

No order, no sequence: one embedding per user and per item, score = dot product.
Each training interaction (u, i) is paired with a random item j, and the loss
pushes score(u, i) above score(u, j).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from palr_utils.retrieval.sequences import SequenceData, interaction_batches
from palr_utils.retrieval.training import TorchRetriever


@dataclass(frozen=True)
class BPRConfig:
    embedding_size: int = 64


class BPRMF(TorchRetriever):
    name = "bpr_mf"

    def __init__(self, n_users: int, n_items: int, config: BPRConfig = BPRConfig()):
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config
        self.user_embedding = nn.Embedding(n_users, config.embedding_size)
        self.item_embedding = nn.Embedding(n_items, config.embedding_size)
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=0.1)

    def describe(self) -> dict:
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, **asdict(self.config)}

    def batches(self, data: SequenceData, rng: np.random.Generator, batch_size: int):
        for users, items in interaction_batches(data, rng, batch_size):
            negatives = torch.as_tensor(rng.integers(0, self.n_items, len(items)))
            yield users, items, negatives

    def loss(self, batch) -> torch.Tensor:
        users, positives, negatives = batch
        u = self.user_embedding(users)
        difference = (u * self.item_embedding(positives)).sum(-1) - (u * self.item_embedding(negatives)).sum(-1)
        return -F.logsigmoid(difference).mean()

    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        return self.user_embedding(torch.as_tensor(users, device=self.device)) @ self.item_embedding.weight.T

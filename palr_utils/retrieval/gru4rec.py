"""GRU4Rec (Hidasi et al., 2016): a recurrent network reads the history and predicts the next item.

The GRU's hidden state after item t summarises items 1..t. As in SASRec here,
scores are dot products with the item embeddings and training uses the full
softmax (cross-entropy over all items), the loss later GRU4Rec versions favour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from palr_utils.retrieval.sequences import SequenceData, left_pad, next_item_batches
from palr_utils.retrieval.training import TorchRetriever


@dataclass(frozen=True)
class GRU4RecConfig:
    max_len: int = 200
    hidden_size: int = 64
    dropout: float = 0.2


class GRU4Rec(TorchRetriever):
    name = "gru4rec"

    def __init__(self, n_items: int, config: GRU4RecConfig = GRU4RecConfig()):
        super().__init__()
        self.n_items, self.config = n_items, config
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden_size, config.hidden_size, batch_first=True)
        self.project = nn.Linear(config.hidden_size, config.hidden_size)

    def describe(self) -> dict:
        return {"name": self.name, "n_items": self.n_items, **asdict(self.config)}

    def encode(self, padded: torch.Tensor) -> torch.Tensor:
        # Left padding: the GRU reads zeros first, then the real items, so the last state is the user's.
        states, _ = self.gru(self.dropout(self.item_embedding(padded)))
        return self.project(self.dropout(states))

    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        histories = [self.data.history(int(u), split) for u in users]
        last = self.encode(left_pad(histories, self.config.max_len).to(self.device))[:, -1]
        return last @ self.item_embedding.weight[1:].T

    def batches(self, data: SequenceData, rng: np.random.Generator, batch_size: int):
        return next_item_batches(data, rng, batch_size, self.config.max_len)

    def loss(self, batch) -> torch.Tensor:
        inputs, targets = batch
        real = targets > 0
        hidden = self.encode(inputs)[real]
        return F.cross_entropy(hidden @ self.item_embedding.weight[1:].T, targets[real] - 1)

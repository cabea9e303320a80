"""Caser (Tang & Wang, 2018): convolutions over the embeddings of the last L items.

The last L item embeddings form an L x d "image". Horizontal filters of
heights 1..L detect union-level patterns (several recent items together);
vertical filters take weighted sums over the L items (point-level patterns).
The result, joined with a user embedding for long-term taste, scores every item.
Trained with cross-entropy over all items on sliding windows of each history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from palr_utils.retrieval.sequences import SequenceData, left_pad
from palr_utils.retrieval.training import TorchRetriever


@dataclass(frozen=True)
class CaserConfig:
    window: int = 5  # L: how many recent items the convolutions see
    embedding_size: int = 64
    horizontal_filters: int = 16  # per height 1..L
    vertical_filters: int = 4
    dropout: float = 0.5


class Caser(TorchRetriever):
    name = "caser"

    def __init__(self, n_users: int, n_items: int, config: CaserConfig = CaserConfig()):
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config
        L, d = config.window, config.embedding_size
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.user_embedding = nn.Embedding(n_users, d)
        self.horizontal = nn.ModuleList(nn.Conv2d(1, config.horizontal_filters, (h, d)) for h in range(1, L + 1))
        self.vertical = nn.Conv2d(1, config.vertical_filters, (L, 1))
        self.fc = nn.Linear(config.horizontal_filters * L + config.vertical_filters * d, d)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Embedding(n_items, 2 * d)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        for table in (self.item_embedding, self.user_embedding, self.output):
            nn.init.normal_(table.weight, std=1.0 / d)

    def describe(self) -> dict:
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, **asdict(self.config)}

    def represent(self, users: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """[batch] users and [batch, L] recent items (+1, 0 = padding) -> [batch, 2d]."""
        image = self.item_embedding(windows).unsqueeze(1)  # [batch, 1, L, d]
        horizontal = [F.relu(conv(image)).squeeze(3).amax(dim=2) for conv in self.horizontal]
        vertical = self.vertical(image).flatten(1)
        z = F.relu(self.fc(self.dropout(torch.cat([*horizontal, vertical], dim=1))))
        return torch.cat([z, self.user_embedding(users)], dim=1)

    def scores(self, representation: torch.Tensor) -> torch.Tensor:
        return representation @ self.output.weight.T + self.output_bias

    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        windows = left_pad([self.data.history(int(u), split) for u in users], self.config.window)
        return self.scores(self.represent(torch.as_tensor(users, device=self.device), windows.to(self.device)))

    def batches(self, data: SequenceData, rng: np.random.Generator, batch_size: int):
        """Every training position t >= 1: the L items before it predict item t."""
        L = self.config.window
        order = rng.permutation(data.n_users)
        for start in range(0, len(order), batch_size):
            users, windows, targets = [], [], []
            for user in order[start : start + batch_size]:
                sequence = data.train[user]
                for t in range(1, len(sequence)):
                    users.append(user)
                    windows.append(sequence[max(0, t - L) : t])
                    targets.append(sequence[t])
            yield torch.as_tensor(np.array(users)), left_pad(windows, L), torch.as_tensor(np.array(targets))

    def loss(self, batch) -> torch.Tensor:
        users, windows, targets = batch
        return F.cross_entropy(self.scores(self.represent(users, windows)), targets)

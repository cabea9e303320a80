"""SASRec (Kang & McAuley, 2018): self-attention over a user's history predicts the next item.

Each position of the history attends to itself and to earlier positions only
(a causal mask), so the output at position t summarises items 1..t and is
trained to predict item t+1. Padding is masked: no position attends to it,
so a history scores the same however wide its batch is padded. Scores are dot
products with the same item embedding table the input uses.

Loss: by default the full softmax (cross-entropy over all items), which
Klenitskiy & Vasilev (RecSys 2023) showed lifts SASRec far above the original
binary cross-entropy with one sampled negative; ``loss="bce"`` keeps the original.
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
class SASRecConfig:
    max_len: int = 200  # most recent items the model reads
    hidden_size: int = 64
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    # dropout on the attention probabilities (None: the same as ``dropout``); its random masks over
    # [batch, max_len, max_len] cost about a fifth of a training step on a CPU
    attention_dropout: float | None = None
    all_windows: bool = True  # train on older parts of long histories too (see sequences.training_windows)
    # batches of similar-length windows (about the same number of positions each), each padded only to its
    # longest: on MovieLens-1M 43% of a max_len-wide random batch is padding, and attention grows with width²
    group_by_length: bool = True
    loss: str = "ce"  # "ce": full softmax; "bce": one sampled negative (the original paper)


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a position-wise feed-forward net."""

    def __init__(self, hidden: int, heads: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=attention_dropout, batch_first=True)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        h = self.attention_norm(x)
        x = x + self.attention(h, h, h, attn_mask=blocked, need_weights=False)[0]
        return x + self.feed_forward(self.feed_forward_norm(x))


class SASRec(TorchRetriever):
    name = "sasrec"

    def __init__(self, n_items: int, config: SASRecConfig = SASRecConfig()):
        super().__init__()
        if config.loss not in ("ce", "bce"):
            raise ValueError(f"loss must be 'ce' or 'bce', not {config.loss!r}")
        self.n_items, self.config = n_items, config
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)  # id 0 = padding
        self.position_embedding = nn.Embedding(config.max_len, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        attention_dropout = config.dropout if config.attention_dropout is None else config.attention_dropout
        self.blocks = nn.ModuleList(
            CausalSelfAttentionBlock(config.hidden_size, config.n_heads, config.dropout, attention_dropout)
            for _ in range(config.n_blocks)
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)
        mask = torch.triu(torch.ones(config.max_len, config.max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)  # True = may not attend (the future)
        # Small initial embeddings keep the first logits near zero (a loss near log(n_items)).
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=0.02)

    def describe(self) -> dict:
        settings = asdict(self.config)
        if settings["attention_dropout"] is None:  # the default: checkpoints from before the option stay valid
            del settings["attention_dropout"]
        return {"name": self.name, "n_items": self.n_items, **settings}

    def attention_mask(self, is_item: torch.Tensor) -> torch.Tensor:
        """Bool [batch * heads, width, width], True where a position may not attend.

        A position attends to itself and to earlier real items: never to the future (causal) and
        never to padding, so the output does not depend on how much padding a batch has.
        Padding positions attend only to themselves (a row with nothing allowed would give NaN).
        """
        width = is_item.shape[1]
        blocked = self.causal_mask[:width, :width] | ~is_item[:, None, :]
        blocked &= ~torch.eye(width, dtype=torch.bool, device=is_item.device)
        return blocked.repeat_interleave(self.config.n_heads, dim=0)

    def encode(self, padded: torch.Tensor) -> torch.Tensor:
        """[batch, width <= max_len] left-padded item ids (+1, 0 = padding) -> [batch, width, hidden]."""
        is_item = padded > 0
        # positions count back from the most recent item, which always sits at position max_len - 1
        width = padded.shape[1]
        positions = torch.arange(self.config.max_len - width, self.config.max_len, device=padded.device)
        x = self.item_embedding(padded) * self.config.hidden_size**0.5 + self.position_embedding(positions)
        x = self.dropout(x) * is_item.unsqueeze(-1)  # padding stays zero, so it carries no signal
        blocked = self.attention_mask(is_item)
        for block in self.blocks:
            x = block(x, blocked) * is_item.unsqueeze(-1)
        return self.final_norm(x)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Dot product of hidden states with every real item's embedding (the table is shared)."""
        return hidden @ self.item_embedding.weight[1:].T

    def score_histories(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores of every item as the next one after each history; used for any prefix."""
        padded = left_pad(histories, self.config.max_len, fit_longest=True).to(self.device)
        return self.item_scores(self.encode(padded)[:, -1])

    def _score(self, users: np.ndarray, split: str) -> torch.Tensor:
        return self.score_histories([self.data.history(int(u), split) for u in users])

    def batches(self, data: SequenceData, rng: np.random.Generator, batch_size: int):
        config = self.config
        return next_item_batches(data, rng, batch_size, config.max_len, all_windows=config.all_windows,
                                 group_by_length=config.group_by_length)  # fmt: skip

    def loss(self, batch) -> torch.Tensor:
        inputs, targets = batch
        hidden = self.encode(inputs)
        real = targets > 0
        hidden, positives = hidden[real], targets[real]  # only positions that have a next item
        if self.config.loss == "ce":
            return F.cross_entropy(self.item_scores(hidden), positives - 1)
        negatives = torch.randint(1, self.n_items + 1, positives.shape, device=positives.device)
        positive_logits = (hidden * self.item_embedding(positives)).sum(-1)
        negative_logits = (hidden * self.item_embedding(negatives)).sum(-1)
        return F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits)) + (
            F.binary_cross_entropy_with_logits(negative_logits, torch.zeros_like(negative_logits))
        )

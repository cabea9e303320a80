"""Collaborative item tokens (our extension, after LLaRA, Liao et al. 2024): the retriever's item embedding,
through a small trainable projector, as one extra input token after each title.

A title tells the LLM what an item *is*; SASRec's embedding of it tells what it is watched *with*, the signal
that titles lack and the retriever is built on. Each item named in PALR-rank's prompt (the history) and in each
candidate's line gets one slot token right after its title: ``Toy Story (1995) <item>``. The slot's input vector
is not a word's embedding but ``projector(sasrec_embedding[item])``, an MLP from SASRec's size to the LLM's,
trained together with the LoRA adapter. The SASRec is notebook 03's twin trained *one step back*, at training and
at test alike: it never saw the answers of PALR-rank's training examples, and one table serves both, so the
tokens mean the same thing when they are learned and when they are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from palr_utils.core.constants import CHECKPOINTS_DIR, TWIN_RETRIEVER
from palr_utils.core.hashing import sha256_hex
from palr_utils.core.io import StaleArtifactError
from palr_utils.retrieval.training import BEST_WEIGHTS

ITEM_SLOT = " <item>"  # where an item's token goes in the prompt text; replaced by one token when encoded
ITEM_TOKENS_FILE = "adapter_item_tokens.safetensors"  # saved beside the LoRA weights (adapter_* files travel together)
EMBEDDING_KEY = "item_embedding.weight"  # SASRec's item table in its checkpoint: row 0 padding, row i + 1 item i


@dataclass(frozen=True, eq=False)
class ItemTable:
    """A retriever's item embeddings, [n_items + 1, d] (row 0: padding), and where they came from."""

    weight: torch.Tensor
    source: str

    @classmethod
    def from_checkpoint(cls, folder: str | Path) -> ItemTable:
        """The item table of a SASRec checkpoint folder of notebook 03 (its best validation weights)."""
        from safetensors import SafetensorError, safe_open

        path = Path(folder) / BEST_WEIGHTS
        if not path.exists():
            raise FileNotFoundError(f"No SASRec checkpoint at {path}: run notebooks/03_sasrec_retrieval.ipynb first "
                                    "(collaborative item tokens read its twin trained one step back).")  # fmt: skip
        try:
            with safe_open(str(path), framework="pt") as handle:
                weight = handle.get_tensor(EMBEDDING_KEY)
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} cannot be read ({error}); rerun notebook 03 to write it again.") from error
        return cls(weight.float(), Path(folder).name)

    def identity(self) -> dict:
        """What a trained projector is tied to: the table's shape and contents (not where it lies on disk)."""
        values = self.weight.detach().cpu().contiguous().numpy()
        return {"source": self.source, "shape": list(values.shape), "sha256": sha256_hex([values])}


class ItemTokens(nn.Module):
    """``forward(items)``: each item's token vector for the LLM, [n, hidden_size], from the frozen item table."""

    def __init__(self, table: ItemTable, hidden_size: int, token_rms: float | None = None):
        super().__init__()
        self.register_buffer("table", table.weight.detach().float().clone(), persistent=False)  # frozen, not saved
        self.table_identity = table.identity()
        width = self.table.shape[1]
        # LayerNorm first: SASRec's embeddings have no fixed scale; a two-layer MLP as in LLaRA
        self.projector = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden_size), nn.GELU(),
                                       nn.Linear(hidden_size, hidden_size))  # fmt: skip
        if token_rms is not None:  # start at the size of the LLM's own token embeddings, neither drowned nor loud
            with torch.no_grad():
                scale = token_rms / self(torch.arange(self.table.shape[0] - 1)).pow(2).mean().sqrt()
                self.projector[-1].weight.mul_(scale)
                self.projector[-1].bias.mul_(scale)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.projector(self.table[items + 1])

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        metadata = {"table_sha256": self.table_identity["sha256"], "hidden_size": str(self.projector[-1].out_features)}
        state = {k: v.detach().cpu().contiguous() for k, v in self.projector.state_dict().items()}
        save_file(state, str(Path(folder) / ITEM_TOKENS_FILE), metadata=metadata)

    def load_weights(self, folder: str | Path) -> ItemTokens:
        """The projector's trained weights from an adapter or checkpoint folder; refused when they were trained
        on another item table (another retriever, or another data set)."""
        from safetensors import safe_open

        path = _tokens_file(folder)
        with safe_open(str(path), framework="pt") as handle:
            trained_on = handle.metadata().get("table_sha256")
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        if trained_on != self.table_identity["sha256"]:
            raise StaleArtifactError(
                f"The item tokens in {folder} were trained on another item table than "
                f"{self.table_identity['source']}'s (another retriever or data set). Rerun notebook 04 after notebook "
                "03, or delete that folder."
            )
        device = self.table.device
        self.projector.load_state_dict({k: v.to(device) for k, v in state.items()})
        return self


def _tokens_file(folder: str | Path) -> Path:
    """The projector's file in an adapter or checkpoint folder; an error that says what to do when it is missing."""
    path = Path(folder) / ITEM_TOKENS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {ITEM_TOKENS_FILE}: it was trained without collaborative item "
                                "tokens. Set rank_item_tokens=false, or rerun notebook 04 with them.")  # fmt: skip
    return path


def twin_item_table(artifact_dir: str | Path) -> ItemTable:
    """The item table of notebook 03's SASRec trained one step back, the one item tokens read at training and test."""
    return ItemTable.from_checkpoint(Path(artifact_dir) / CHECKPOINTS_DIR / TWIN_RETRIEVER)


def load_item_tokens(adapter_dir: str | Path, table: ItemTable, device=None) -> ItemTokens:
    """A trained PALR-rank's item tokens, for scoring (notebook 05)."""
    from safetensors import safe_open

    path = _tokens_file(adapter_dir)
    with safe_open(str(path), framework="pt") as handle:
        hidden_size = int(handle.metadata()["hidden_size"])
    tokens = ItemTokens(table, hidden_size).load_weights(adapter_dir)
    return tokens.to(device).eval() if device is not None else tokens.eval()


def parameter_count(tokens: ItemTokens) -> int:
    return sum(p.numel() for p in tokens.projector.parameters())

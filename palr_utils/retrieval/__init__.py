"""Candidate retrieval: the retriever interface, SASRec and the paper's baselines."""

from __future__ import annotations

from palr_utils.retrieval.base import Retriever
from palr_utils.retrieval.bpr import BPRMF
from palr_utils.retrieval.candidates import export_candidates, recall_at_k
from palr_utils.retrieval.caser import Caser
from palr_utils.retrieval.gru4rec import GRU4Rec, GRU4RecConfig
from palr_utils.retrieval.ncf import NeuMF
from palr_utils.retrieval.popularity import Popularity
from palr_utils.retrieval.sasrec import SASRec, SASRecConfig
from palr_utils.retrieval.sequences import SequenceData
from palr_utils.retrieval.training import TorchRetriever, TrainingConfig, train

__all__ = [
    "BPRMF",
    "Caser",
    "GRU4Rec",
    "NeuMF",
    "Popularity",
    "Retriever",
    "SASRec",
    "SASRecConfig",
    "SequenceData",
    "TrainingConfig",
    "build_baselines",
    "export_candidates",
    "recall_at_k",
    "train",
]


def build_baselines(
    n_users: int, n_items: int, max_len: int = 200, seed: int | None = None
) -> dict[str, TorchRetriever]:
    """The paper's trained baselines, untrained, in the order of its Table 2.

    With ``seed``, each model draws its initial weights right after ``torch.manual_seed(seed)``: a baseline then
    starts from the same weights whatever ran before it (after SASRec's training in notebook 03, alone in
    ``benchmarks/baselines.py``), so a setting chosen in the benchmark is the one the notebook trains.
    """
    import torch

    builders = {
        "bpr_mf": lambda: BPRMF(n_users, n_items),
        "ncf": lambda: NeuMF(n_users, n_items),
        "gru4rec": lambda: GRU4Rec(n_items, GRU4RecConfig(max_len=max_len)),
        "caser": lambda: Caser(n_users, n_items),
    }
    models = {}
    for name, build in builders.items():
        if seed is not None:
            torch.manual_seed(seed)
        models[name] = build()
    return models

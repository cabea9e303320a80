"""Candidate retrieval: the retriever interface, SASRec and the paper's baselines."""

from __future__ import annotations

from collections.abc import Sequence

from palr_utils.retrieval.base import Retriever
from palr_utils.retrieval.bpr import BPRMF, BPRConfig
from palr_utils.retrieval.candidates import export_candidates, recall_at_k
from palr_utils.retrieval.caser import Caser, CaserConfig
from palr_utils.retrieval.gru4rec import GRU4Rec, GRU4RecConfig
from palr_utils.retrieval.ncf import NCFConfig, NeuMF
from palr_utils.retrieval.popularity import Popularity
from palr_utils.retrieval.sasrec import SASRec, SASRecConfig
from palr_utils.retrieval.sequences import SequenceData
from palr_utils.retrieval.training import TorchRetriever, TrainingConfig, load_trained, train

__all__ = [
    "BASELINE_NAMES",
    "BPRMF",
    "BPRConfig",
    "Caser",
    "CaserConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "NCFConfig",
    "NeuMF",
    "Popularity",
    "Retriever",
    "SASRec",
    "SASRecConfig",
    "SequenceData",
    "TrainingConfig",
    "baseline_config",
    "build_baselines",
    "export_candidates",
    "load_trained",
    "recall_at_k",
    "train",
]


# The paper's trained baselines in the order of its Table 2: each name's default configuration (given the
# sequence length) and how to build the model from a configuration, said once.
_BASELINES = {
    "bpr_mf": (lambda max_len: BPRConfig(), lambda n_users, n_items, config: BPRMF(n_users, n_items, config)),
    "ncf": (lambda max_len: NCFConfig(), lambda n_users, n_items, config: NeuMF(n_users, n_items, config)),
    "gru4rec": (
        lambda max_len: GRU4RecConfig(max_len=max_len),
        lambda n_users, n_items, config: GRU4Rec(n_items, config),
    ),
    "caser": (lambda max_len: CaserConfig(), lambda n_users, n_items, config: Caser(n_users, n_items, config)),
}


def _check_baseline_names(names) -> None:
    if unknown := sorted(set(names) - set(_BASELINES)):
        raise ValueError(f"no baseline called {', '.join(map(repr, unknown))}; the baselines are {list(_BASELINES)}")


def baseline_config(name: str, max_len: int = 200, configs: dict | None = None):
    """The model configuration ``build_baselines`` gives the baseline ``name``: ``configs``' entry, else the default."""
    _check_baseline_names([name])
    default_config, _ = _BASELINES[name]
    return (configs or {}).get(name) or default_config(max_len)


BASELINE_NAMES = tuple(_BASELINES)


def build_baselines(
    n_users: int, n_items: int, max_len: int = 200, seed: int | None = None, configs: dict | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, TorchRetriever]:  # fmt: skip
    """The paper's trained baselines, untrained, in the order of its Table 2 (``names``: only those).

    ``configs`` replaces the default configuration of the models it names (``{"ncf": NCFConfig(...)}``; a
    preset's ``baseline_models``). With ``seed``, each model draws its initial weights right after
    ``torch.manual_seed(seed)``: a baseline then starts from the same weights whatever ran before it (after
    SASRec's training in notebook 03, or in a benchmark that trains only some of them), so a setting chosen
    in a benchmark is the one the full notebook trains.
    """
    import torch

    _check_baseline_names(configs or {})
    _check_baseline_names(names or ())
    models = {}
    for name, (_, build) in _BASELINES.items():
        if names is not None and name not in names:
            continue
        if seed is not None:
            torch.manual_seed(seed)
        models[name] = build(n_users, n_items, baseline_config(name, max_len, configs))
    return models

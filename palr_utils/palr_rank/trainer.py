"""PALR-rank's training: the listwise loss inside TRL's SFTTrainer."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from palr_utils.llm.prompts import rank_candidate
from palr_utils.palr_rank.scoring import candidate_scores, collate_candidates, encode_candidates, pad_id


def listwise_loss(scores: torch.Tensor, answers: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each row's candidate scores with the right candidate's index: a softmax over the list.

    With ``prior`` (residual training, our extension): the softmax is over ``prior + scores``, the retriever's
    log-softmax plus the LLM's scores, the form fusion ranks by at test. The LLM is then trained on what the
    retriever gets wrong, not to rebuild what it already knows."""
    return F.cross_entropy(scores if prior is None else scores + prior.to(scores.dtype), answers)


def to_rank_dataset(examples: pd.DataFrame, tokenizer, system: str | None = None, residual: bool = False):
    """The examples encoded for :class:`ListwiseCandidateTrainer` (``prompt``/``completion`` name each example's
    text and answer, so that the run's identity covers them); ``residual`` keeps the retriever's priors."""
    if residual and any(len(p) != len(c) for p, c in zip(examples["prior"], examples["candidate_titles"], strict=True)):
        raise ValueError("residual training needs the retriever's score of every candidate; these examples have "
                         "random negatives, which it never scored: set rank_random_negatives=0 or rank_residual=false")
    from datasets import Dataset

    from palr_utils.llm.loading import format_prompt

    prompts = [format_prompt(tokenizer, p, system) for p in examples["prompt"]]
    encoded = [encode_candidates(tokenizer, p, t) for p, t in zip(prompts, examples["candidate_titles"], strict=True)]
    columns = {
        "prompt": [p + "\n".join(map(rank_candidate, t)) for p, t in zip(prompts, examples["candidate_titles"],
                                                                        strict=True)],
        "completion": [str(a) for a in examples["answer"]],
        "answer": [int(a) for a in examples["answer"]],
        **{key: [e[key] for e in encoded] for key in ("input_ids", "segments", "positions", "score_at")},
    }  # fmt: skip
    if residual:  # the priors become part of each example's text, so that the run's identity covers them too
        columns["prior"] = [list(map(float, p)) for p in examples["prior"]]
        columns["completion"] = [f"{a} prior {json.dumps(list(map(float, p)))}" for a, p in
                                 zip(examples["answer"], examples["prior"], strict=True)]  # fmt: skip
    return Dataset.from_dict(columns)


def listwise_trainer_class():
    """``SFTTrainer`` with parallel candidates and the listwise loss (imported lazily: TRL is heavy)."""
    from trl import SFTTrainer

    class ListwiseCandidateTrainer(SFTTrainer):
        """SFTTrainer over :func:`to_rank_dataset` rows: batches from :func:`collate_candidates`, the loss from
        :func:`listwise_loss` of :func:`candidate_scores`."""

        def __init__(self, *args, verdict_ids: Sequence[int], residual: bool = False, **kwargs):
            config, tokenizer = kwargs["args"], kwargs["processing_class"]
            # The rows are already tokenized, with columns of our own that the default pipeline would drop.
            config.dataset_kwargs = {**(config.dataset_kwargs or {}), "skip_prepare_dataset": True}
            config.remove_unused_columns = False
            kwargs.setdefault("data_collator", lambda rows: collate_candidates(rows, pad_id(tokenizer)))
            super().__init__(*args, **kwargs)
            self.verdict_ids, self.residual = list(verdict_ids), residual
            if residual and "prior" not in kwargs["train_dataset"].column_names:
                raise ValueError("residual training needs the retriever's priors: to_rank_dataset(..., residual=True)")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            prior = inputs["prior"] if self.residual else None
            loss = listwise_loss(candidate_scores(model, inputs, self.verdict_ids), inputs["answer"], prior)
            return (loss, None) if return_outputs else loss

    return ListwiseCandidateTrainer


def rank_trainer_kwargs(verdict_ids: Sequence[int], residual: bool) -> dict:
    """What :class:`ListwiseCandidateTrainer` takes beyond SFTTrainer's, as notebook 04 and the command line pass
    it (part of the run's identity; ``residual`` named only when on, so other runs' identities stay as they are)."""
    return {"verdict_ids": list(map(int, verdict_ids)), **({"residual": True} if residual else {})}

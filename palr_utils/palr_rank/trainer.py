"""PALR-rank's training: the listwise loss inside TRL's SFTTrainer."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from palr_utils.llm.prompts import rank_candidate
from palr_utils.palr_rank.scoring import candidate_scores, collate_candidates, encode_candidates, pad_id


def listwise_loss(scores: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's candidate scores with the right candidate's index: a softmax over the list."""
    return F.cross_entropy(scores, answers)


def to_rank_dataset(examples: pd.DataFrame, tokenizer, system: str | None = None):
    """The examples encoded for :class:`ListwiseCandidateTrainer` (``prompt``/``completion`` name each example's
    text and answer, so that the run's identity covers them)."""
    from datasets import Dataset

    from palr_utils.llm.loading import format_prompt

    prompts = [format_prompt(tokenizer, p, system) for p in examples["prompt"]]
    encoded = [encode_candidates(tokenizer, p, t) for p, t in zip(prompts, examples["candidate_titles"], strict=True)]
    return Dataset.from_dict({
        "prompt": [p + "\n".join(map(rank_candidate, t)) for p, t in zip(prompts, examples["candidate_titles"],
                                                                        strict=True)],
        "completion": [str(a) for a in examples["answer"]],
        "answer": [int(a) for a in examples["answer"]],
        **{key: [e[key] for e in encoded] for key in ("input_ids", "segments", "positions", "score_at")},
    })  # fmt: skip


def listwise_trainer_class():
    """``SFTTrainer`` with parallel candidates and the listwise loss (imported lazily: TRL is heavy)."""
    from trl import SFTTrainer

    class ListwiseCandidateTrainer(SFTTrainer):
        """SFTTrainer over :func:`to_rank_dataset` rows: batches from :func:`collate_candidates`, the loss from
        :func:`listwise_loss` of :func:`candidate_scores`."""

        def __init__(self, *args, verdict_ids: Sequence[int], **kwargs):
            config, tokenizer = kwargs["args"], kwargs["processing_class"]
            # The rows are already tokenized, with columns of our own that the default pipeline would drop.
            config.dataset_kwargs = {**(config.dataset_kwargs or {}), "skip_prepare_dataset": True}
            config.remove_unused_columns = False
            kwargs.setdefault("data_collator", lambda rows: collate_candidates(rows, pad_id(tokenizer)))
            super().__init__(*args, **kwargs)
            self.verdict_ids = list(verdict_ids)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = listwise_loss(candidate_scores(model, inputs, self.verdict_ids), inputs["answer"])
            return (loss, None) if return_outputs else loss

    return ListwiseCandidateTrainer

"""PALR-rank's training: the listwise loss inside TRL's SFTTrainer."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from palr_utils.llm.prompts import rank_candidate
from palr_utils.palr_rank.item_tokens import ITEM_SLOT, ItemTable, ItemTokens
from palr_utils.palr_rank.scoring import candidate_scores, collate_candidates, encode_candidates, pad_id


def listwise_loss(scores: torch.Tensor, answers: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each row's candidate scores with the right candidate's index: a softmax over the list.

    With ``prior`` (residual training, our extension): the softmax is over ``prior + scores``, the retriever's
    log-softmax plus the LLM's scores, the form fusion ranks by at test. The LLM is then trained on what the
    retriever gets wrong, not to rebuild what it already knows."""
    return F.cross_entropy(scores if prior is None else scores + prior.to(scores.dtype), answers)


def to_rank_dataset(
    examples: pd.DataFrame, tokenizer, system: str | None = None, residual: bool = False, item_slots: bool = False
):
    """The examples encoded for :class:`ListwiseCandidateTrainer` (``prompt``/``completion`` name each example's
    text and answer, so that the run's identity covers them); ``residual`` keeps the retriever's priors;
    ``item_slots`` (examples built with ``item_slots=True``) gives every history item and candidate its slot."""
    if residual and any(len(p) != len(c) for p, c in zip(examples["prior"], examples["candidate_titles"], strict=True)):
        raise ValueError("residual training needs the retriever's score of every candidate; these examples have "
                         "random negatives, which it never scored: set rank_random_negatives=0 or rank_residual=false")
    from datasets import Dataset

    from palr_utils.llm.loading import format_prompt

    prompts = [format_prompt(tokenizer, p, system) for p in examples["prompt"]]
    titles = list(examples["candidate_titles"])
    if item_slots:
        items = zip(examples["history"], examples["candidates"], strict=True)
        encoded = [encode_candidates(tokenizer, p, t, h, c, pad_id(tokenizer))
                   for p, t, (h, c) in zip(prompts, titles, items, strict=True)]  # fmt: skip
        titles = [[title + ITEM_SLOT for title in row] for row in titles]  # as the lines read, for the identity
    else:
        encoded = [encode_candidates(tokenizer, p, t) for p, t in zip(prompts, titles, strict=True)]
    columns = {
        "prompt": [p + "\n".join(map(rank_candidate, t)) for p, t in zip(prompts, titles, strict=True)],
        "completion": [str(a) for a in examples["answer"]],
        "answer": [int(a) for a in examples["answer"]],
        **{key: [e[key] for e in encoded] for key in ("input_ids", "segments", "positions", "score_at")},
        **({"item_at": [e["item_at"] for e in encoded]} if item_slots else {}),
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
        :func:`listwise_loss` of :func:`candidate_scores`. With ``item_table``, collaborative item tokens: their
        projector trains beside the adapter at ``item_tokens_lr`` and is saved with it, in every checkpoint too."""

        def __init__(self, *args, verdict_ids: Sequence[int], residual: bool = False,
                     item_table: ItemTable | None = None, item_tokens_lr: float = 1e-3, **kwargs):  # fmt: skip
            config, tokenizer = kwargs["args"], kwargs["processing_class"]
            # The rows are already tokenized, with columns of our own that the default pipeline would drop.
            config.dataset_kwargs = {**(config.dataset_kwargs or {}), "skip_prepare_dataset": True}
            config.remove_unused_columns = False
            kwargs.setdefault("data_collator", lambda rows: collate_candidates(rows, pad_id(tokenizer)))
            super().__init__(*args, **kwargs)
            self.verdict_ids, self.residual = list(verdict_ids), residual
            if residual and "prior" not in kwargs["train_dataset"].column_names:
                raise ValueError("residual training needs the retriever's priors: to_rank_dataset(..., residual=True)")
            self.item_tokens, self.item_tokens_lr = None, item_tokens_lr
            if item_table is not None:
                if "item_at" not in kwargs["train_dataset"].column_names:
                    raise ValueError("item tokens need examples with item slots: build_rank_examples(..., "
                                     "item_slots=True) and to_rank_dataset(..., item_slots=True)")  # fmt: skip
                words = self.model.get_input_embeddings().weight
                self.item_tokens = ItemTokens(item_table, words.shape[1], float(words.float().pow(2).mean().sqrt()))
                self.item_tokens.to(words.device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            prior = inputs["prior"] if self.residual else None
            scores = candidate_scores(model, inputs, self.verdict_ids, self.item_tokens)
            loss = listwise_loss(scores, inputs["answer"], prior)
            return (loss, None) if return_outputs else loss

        def create_optimizer(self, model=None):
            fresh = self.optimizer is None
            optimizer = super().create_optimizer(model)
            if fresh and self.item_tokens is not None:  # its own rate; the schedule (warm-up, decay) applies to it too
                optimizer.add_param_group({"params": list(self.item_tokens.parameters()), "lr": self.item_tokens_lr,
                                           "weight_decay": 0.0})  # fmt: skip
            return optimizer

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            self.save_extras(output_dir or self.args.output_dir)

        def save_extras(self, folder) -> None:
            """What the adapter needs beside its LoRA weights (``finetune`` calls it for the final adapter)."""
            if self.item_tokens is not None and self.args.should_save:
                self.item_tokens.save(folder)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            if self.item_tokens is not None:  # resumed: the projector goes on from where the checkpoint left it
                self.item_tokens.load_weights(resume_from_checkpoint)

    return ListwiseCandidateTrainer


def rank_trainer_kwargs(
    verdict_ids: Sequence[int], residual: bool, item_table: ItemTable | None = None, item_tokens_lr: float = 1e-3
) -> dict:
    """What :class:`ListwiseCandidateTrainer` takes beyond SFTTrainer's, as notebook 04 and the command line pass
    it (part of the run's identity; ``residual`` and the item tokens named only when on, so other runs'
    identities stay as they are)."""
    kwargs = {"verdict_ids": list(map(int, verdict_ids)), **({"residual": True} if residual else {})}
    if item_table is not None:
        kwargs |= {"item_table": item_table, "item_tokens_lr": float(item_tokens_lr)}
    return kwargs

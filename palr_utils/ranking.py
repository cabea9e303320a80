"""PALR-rank: an LLM trained to *rank* the retriever's candidates, one forward pass per user.

Our extension beyond the paper, after LlamaRec (Yue et al., 2023, arXiv 2311.02089). PALR_v2 learns to
*write* answers token by token, and its one-pass letter scores carried no signal (README). This scorer is
trained for exactly what evaluation asks of it:

* **the example**: a user's history (a training prefix), the retriever's top-K candidates for that prefix
  in a shuffled order, labelled ``A.``, ``B.``, ...; the answer is the single letter of the item that
  followed the prefix. Users whose next item is not among their candidates give no example (nothing to
  rank them on);
* **the loss** (listwise): the cross-entropy over the K candidates' letter logits at the answer position,
  a softmax over the list, not over the whole vocabulary;
* **inference**: one forward pass, the K letter logits rank all candidates at once (``rerank.letter_scores``).

TRL's ``SFTTrainer`` does the training; only ``compute_loss`` changes (``ListwiseLetterTrainer``).
Validation and test items never enter an example: the prefix and its next item are training data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from palr_utils.constants import ITEM, SPLIT, TITLE, TRAIN, USER
from palr_utils.instructions import keywords_without_answers, shorten
from palr_utils.prompts import CANDIDATE_LABELS, rank_prompt
from palr_utils.retrieval.candidates import RANK, training_prefix
from palr_utils.retrieval.sequences import SequenceData

RANK_TASK = "rank"


def build_rank_examples(
    data: SequenceData,
    items: pd.DataFrame,
    users: Sequence[int],
    candidates: pd.DataFrame,
    n_candidates: int,
    n_history: int,
    n_targets: int,
    seed: int,
    profiles: dict[int, list[str]] | None = None,
    domain: str = "movie",
    max_title_chars: int = 60,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> pd.DataFrame:
    """One ranking example per user whose next training item is among the retriever's top ``n_candidates``
    after the training prefix (notebook 03's ``train`` candidates; ``n_targets`` cuts the prefix as there).

    Returns columns: user, task, prompt, completion (one letter), history, label (the answer item, in a
    list), candidates (as listed). With ``count_tokens``/``max_tokens`` the oldest history items are dropped
    until the prompt fits.
    """
    if n_candidates > len(CANDIDATE_LABELS):
        raise ValueError(f"at most {len(CANDIDATE_LABELS)} candidates can be labelled, not {n_candidates}")
    table = items.sort_values(ITEM).reset_index(drop=True)
    titles = [shorten(t, max_title_chars) for t in table[TITLE]]
    rows = candidates[(candidates[SPLIT] == TRAIN) & (candidates[RANK] < n_candidates)].sort_values([USER, RANK])
    retrieved = {int(u): g[ITEM].astype(int).tolist() for u, g in rows.groupby(USER)}
    profiles = profiles or {}
    examples = []
    for user in map(int, users):
        prefix, following = training_prefix(data.train[user], n_targets)
        shortlist = retrieved.get(user, [])
        if not len(following) or int(following[0]) not in shortlist:
            continue  # the answer is not in the list: nothing to rank (as at test time, a miss for any ranker)
        answer = int(following[0])
        rng = np.random.default_rng([seed, 7, user])  # per user: the same list order whoever else is sampled
        listed = [int(i) for i in rng.permutation(shortlist)]
        keywords = keywords_without_answers(profiles.get(user, []), [titles[answer]])
        history = [int(i) for i in prefix[-n_history:]]
        letter = CANDIDATE_LABELS[listed.index(answer)]

        listed_titles = [titles[i] for i in listed]
        prompt = rank_prompt([titles[i] for i in history], listed_titles, keywords, domain)
        while count_tokens and max_tokens and len(history) > 1 and count_tokens(prompt + letter) > max_tokens:
            history = history[1:]  # the oldest item goes first
            prompt = rank_prompt([titles[i] for i in history], listed_titles, keywords, domain)
        examples.append({
            USER: user, "task": RANK_TASK, "history": history, "label": [answer],
            "prompt": prompt, "completion": letter, "candidates": listed,
        })  # fmt: skip
    return pd.DataFrame(examples, columns=[USER, "task", "history", "label", "prompt", "completion", "candidates"])


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """The position of each row's first answer token (the first label that is not -100)."""
    answered = labels != -100
    if not answered.any(dim=1).all():
        raise ValueError("a training row has no answer token: its completion was cut off (raise max_length)")
    return answered.int().argmax(dim=1)


def listwise_letter_loss(answer_logits: torch.Tensor, answer_tokens: torch.Tensor, letter_ids: torch.Tensor):
    """Cross-entropy over the candidates' letters only.

    ``answer_logits`` [batch, vocab] are the logits that predict the answer token, ``answer_tokens`` [batch]
    the letters written there, ``letter_ids`` [K] the K letters' token ids. Every other token of the
    vocabulary is left out of the softmax: the model is taught to order the list, not to write.
    """
    letter_logits = answer_logits[:, letter_ids].float()  # [batch, K]
    matches = answer_tokens[:, None] == letter_ids[None, :]
    if not matches.any(dim=1).all():
        raise ValueError("an answer is not one of the candidate letters")
    return F.cross_entropy(letter_logits, matches.int().argmax(dim=1))


def listwise_trainer_class():
    """``SFTTrainer`` with the listwise loss (imported lazily: TRL is heavy)."""
    from trl import SFTTrainer

    class ListwiseLetterTrainer(SFTTrainer):
        """SFTTrainer whose loss is :func:`listwise_letter_loss` at each row's answer position."""

        def __init__(self, *args, letter_ids: Sequence[int], **kwargs):
            super().__init__(*args, **kwargs)
            self.letter_ids = torch.tensor(list(letter_ids))

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            answer_at = answer_positions(labels)
            # Only the positions that predict an answer need the vocabulary projection: one per row. The
            # logits kept are [batch, rows' positions, vocab]; row r's own position is the r-th of them.
            keep = answer_at - 1
            model_inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")}
            outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
            rows = torch.arange(len(keep), device=keep.device)
            answer_logits = outputs.logits[rows, rows]
            answer_tokens = labels[rows, answer_at]
            loss = listwise_letter_loss(answer_logits, answer_tokens, self.letter_ids.to(answer_logits.device))
            return (loss, outputs) if return_outputs else loss

    return ListwiseLetterTrainer


def fusion_scores(retriever_scores: np.ndarray, llm_log_probs: np.ndarray, weight: float) -> np.ndarray:
    """The retriever's log-softmax over the K candidates plus ``weight`` times the LLM's letter
    log-probabilities, both in the listed order. ``weight=0`` is the retriever alone."""
    retriever = np.asarray(retriever_scores, dtype=np.float64)
    retriever = retriever - retriever.max()
    retriever = retriever - np.log(np.exp(retriever).sum())
    return retriever + weight * np.asarray(llm_log_probs, dtype=np.float64)

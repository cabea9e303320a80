"""PALR-rank: an LLM trained to *rank* the retriever's candidates, all of them in one forward pass.

Our extension beyond the paper. PALR_v2 learns to *write* answers token by token, and its one-pass letter
scores carried no signal (README). A first version of this scorer followed LlamaRec (Yue et al., 2023): the
candidates listed as ``A.``, ``B.``, ... and a softmax over the letters' logits. On MovieLens-1M its training
loss stayed at ln 20, chance: a 135M-parameter model did not learn to tie a letter back to its title and
compare that title with the history (README). This version asks a simpler question of every candidate:

* **the prompt**: a user's history (their training items but the last) and the instruction "answer Yes if
  the user is likely to have watched it next"; then every candidate as its own line, ``Title:``, after it;
* **parallel candidates**: one sequence holds the prompt and all K lines; an attention mask lets each line
  read the prompt and itself but not the other lines, and each line's positions start where the prompt ends.
  Each candidate is thus judged as if it were alone after the prompt, for the price of one forward pass
  (the prompt is read once), and its place in the list cannot matter: no position bias;
* **the score** of a candidate: the logit of " Yes" minus the logit of " No" after its line;
* **the loss** (listwise): the cross-entropy of the K scores, with the last training item as the right answer.
  Users whose last item is not among their candidates give no example;
* **the candidates** come from a retriever trained *one step back* (without each user's last training item):
  the full retriever learned those very transitions and lists its own training answers in a way test
  candidates never are (on Beauty, 48% of training answers were in its top 20 against 13% of test items).

TRL's ``SFTTrainer`` does the training (``ListwiseCandidateTrainer`` changes the batches and the loss).
Validation and test items never enter an example: the history and its next item are training data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from palr_utils.constants import ITEM, SPLIT, TITLE, USER, VALID
from palr_utils.instructions import keywords_without_answers
from palr_utils.metrics import log_softmax
from palr_utils.prompts import fit_history, rank_candidate, rank_prompt
from palr_utils.retrieval.candidates import RANK
from palr_utils.retrieval.sequences import SequenceData
from palr_utils.titles import prompt_titles

RANK_TASK = "rank"
VERDICTS = (" Yes", " No")  # the tokens whose logits, after a candidate's line, make its score


def build_rank_examples(
    data: SequenceData,
    items: pd.DataFrame,
    users: Sequence[int],
    candidates: pd.DataFrame,
    n_candidates: int,
    n_history: int,
    seed: int,
    profiles: dict[int, list[str]] | None = None,
    domain: str = "movie",
    max_title_chars: int = 60,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> pd.DataFrame:
    """One ranking example per user whose next item is among the retriever's top ``n_candidates``.

    ``data`` is the training data one step back (:meth:`SequenceData.one_step_back`) and ``candidates`` the
    validation-split export of a retriever trained on it: the history is each user's training items but the last,
    the answer the last one, which that retriever never saw. Validation and test items appear nowhere.

    Returns columns: user, task, prompt, candidates (item ids, in a seeded shuffled order), candidate_titles,
    answer (the index of the next item among the candidates), history, label (the next item, in a list).
    With ``count_tokens``/``max_tokens`` the oldest history items are dropped until prompt and lines fit.
    """
    table = items.sort_values(ITEM).reset_index(drop=True)
    titles = prompt_titles(list(table[TITLE]), max_title_chars)
    rows = candidates[(candidates[SPLIT] == VALID) & (candidates[RANK] < n_candidates)].sort_values([USER, RANK])
    retrieved = {int(u): g[ITEM].astype(int).tolist() for u, g in rows.groupby(USER)}
    profiles = profiles or {}
    examples = []
    for user in map(int, users):
        answer, shortlist = int(data.valid[user]), retrieved.get(user, [])
        if answer not in shortlist:
            continue  # the answer is not in the list: nothing to rank (as at test time, a miss for any ranker)
        # The scores do not depend on the order (see the module's docstring); shuffling only keeps the printed
        # examples from always showing the retriever's favourite first.
        rng = np.random.default_rng([seed, 7, user])  # per user: the same order whoever else is sampled
        listed = [int(i) for i in rng.permutation(shortlist)]
        keywords = keywords_without_answers(profiles.get(user, []), [titles[answer]])
        history = [int(i) for i in data.history(user, VALID)[-n_history:]]
        listed_titles = [titles[i] for i in listed]
        lines_cost = sum(count_tokens(rank_candidate(t)) for t in listed_titles) if count_tokens else 0
        budget = max_tokens - lines_cost if count_tokens and max_tokens else None
        prompt, history = fit_history(
            partial(_titled_rank_prompt, titles=titles, keywords=keywords, domain=domain), history,
            lambda prompt: budget is None or count_tokens(prompt) <= budget,  # noqa: B023 - used at once
        )  # fmt: skip
        examples.append({
            USER: user, "task": RANK_TASK, "prompt": prompt, "candidates": listed,
            "candidate_titles": listed_titles, "answer": listed.index(answer), "history": history, "label": [answer],
        })  # fmt: skip
    columns = [USER, "task", "prompt", "candidates", "candidate_titles", "answer", "history", "label"]
    return pd.DataFrame(examples, columns=columns)


def _titled_rank_prompt(shown: list[int], titles: Sequence[str], keywords: list[str], domain: str) -> str:
    return rank_prompt([titles[i] for i in shown], keywords, domain)


def verdict_token_ids(tokenizer, formatted_prompt: str, title: str = "Toy Story (1995)") -> list[int]:
    """The token ids " Yes" and " No" become right after a candidate's line."""
    line = formatted_prompt + rank_candidate(title)
    before = tokenizer(line, add_special_tokens=False).input_ids
    ids = []
    for verdict in VERDICTS:
        after = tokenizer(line + verdict, add_special_tokens=False).input_ids
        if after[: len(before)] != before or len(after) != len(before) + 1:
            raise ValueError(f"{verdict!r} is not one token after a candidate's line with this tokenizer")
        ids.append(after[-1])
    return ids


def encode_candidates(tokenizer, formatted_prompt: str, candidate_titles: Sequence[str]) -> dict[str, list[int]]:
    """One sequence: the prompt's tokens, then each candidate's line.

    ``segments`` says whose each token is (0: the prompt, j: the j-th candidate, from 1), ``positions`` the
    position each token takes (a line continues from the prompt's end, whatever came before it), ``score_at``
    where each candidate's verdict is read (its line's last token).
    """
    prompt_ids = tokenizer(formatted_prompt, add_special_tokens=False).input_ids
    input_ids, segments, positions = list(prompt_ids), [0] * len(prompt_ids), list(range(len(prompt_ids)))
    score_at = []
    for j, title in enumerate(candidate_titles, start=1):
        line = tokenizer(rank_candidate(title), add_special_tokens=False).input_ids
        input_ids += line
        segments += [j] * len(line)
        positions += range(len(prompt_ids), len(prompt_ids) + len(line))
        score_at.append(len(input_ids) - 1)
    return {"input_ids": input_ids, "segments": segments, "positions": positions, "score_at": score_at}


def collate_candidates(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad encoded sequences into a batch (padding: segment -1, candidate slots past a row's K: -1)."""
    length = max(len(f["input_ids"]) for f in features)
    width = max(len(f["score_at"]) for f in features)
    batch = {
        "input_ids": torch.full((len(features), length), pad_token_id, dtype=torch.long),
        "segments": torch.full((len(features), length), -1, dtype=torch.long),
        "position_ids": torch.zeros((len(features), length), dtype=torch.long),
        "score_at": torch.full((len(features), width), -1, dtype=torch.long),
    }
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        batch["input_ids"][row, :n] = torch.tensor(f["input_ids"])
        batch["segments"][row, :n] = torch.tensor(f["segments"])
        batch["position_ids"][row, :n] = torch.tensor(f["positions"])
        batch["score_at"][row, : len(f["score_at"])] = torch.tensor(f["score_at"])
    if "answer" in features[0]:
        batch["answer"] = torch.tensor([int(f["answer"]) for f in features])
    return batch


def _pad_id(tokenizer) -> int:
    """Any id will do for padding (no real token attends to it); the tokenizer's own when it has one."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def candidate_attention_mask(segments: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The attention mask that keeps candidates apart, [batch, 1, length, length], 0 = may attend.

    A token attends to the tokens before it (causal) that belong to the prompt or to its own line. Padding
    (segment -1) is seen by no real token. The mask is additive (a large negative number where attention is
    not allowed), the form every attention implementation of transformers accepts.
    """
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal & ((key == 0) | (key == query))
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def candidate_scores(model, batch: dict[str, torch.Tensor], verdict_ids: Sequence[int]) -> torch.Tensor:
    """Every candidate's score, [batch, K]: logit(" Yes") - logit(" No") after its line; -inf in empty slots."""
    score_at = batch["score_at"]
    dtype = model.get_input_embeddings().weight.dtype
    # Only the verdict positions need the vocabulary projection: logits_to_keep takes their union.
    keep = torch.unique(score_at[score_at >= 0])
    outputs = model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False, logits_to_keep=keep,
        attention_mask=candidate_attention_mask(batch["segments"], dtype),
    )  # fmt: skip
    yes, no = verdict_ids
    verdict = (outputs.logits[..., yes] - outputs.logits[..., no]).float()  # [batch, kept positions]
    scores = verdict.gather(1, torch.searchsorted(keep, score_at.clamp(min=0)))
    return scores.masked_fill(score_at < 0, float("-inf"))


def listwise_loss(scores: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's candidate scores with the right candidate's index: a softmax over the list."""
    return F.cross_entropy(scores, answers)


@torch.no_grad()
def rank_scores(
    tokenizer, model, formatted_prompts: Sequence[str], candidate_titles: Sequence[Sequence[str]]
) -> list[np.ndarray]:
    """Inference: each prompt's candidates scored in one forward pass per batch, in the order given."""
    verdict_ids = verdict_token_ids(tokenizer, formatted_prompts[0])
    features = [encode_candidates(tokenizer, p, t) for p, t in zip(formatted_prompts, candidate_titles, strict=True)]
    batch = {k: v.to(model.device) for k, v in collate_candidates(features, _pad_id(tokenizer)).items()}
    scores = candidate_scores(model, batch, verdict_ids).cpu().numpy()
    return [scores[row, : len(titles)] for row, titles in enumerate(candidate_titles)]


def to_rank_dataset(examples: pd.DataFrame, tokenizer, system: str | None = None):
    """The examples encoded for :class:`ListwiseCandidateTrainer` (``prompt``/``completion`` name each example's
    text and answer, so that the run's identity covers them)."""
    from datasets import Dataset

    from palr_utils.llm import format_prompt

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
            kwargs.setdefault("data_collator", lambda rows: collate_candidates(rows, _pad_id(tokenizer)))
            super().__init__(*args, **kwargs)
            self.verdict_ids = list(verdict_ids)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = listwise_loss(candidate_scores(model, inputs, self.verdict_ids), inputs["answer"])
            return (loss, None) if return_outputs else loss

    return ListwiseCandidateTrainer


def fusion_scores(retriever_scores: np.ndarray, llm_log_probs: np.ndarray, weight: float) -> np.ndarray:
    """The retriever's log-softmax over the K candidates plus ``weight`` times the LLM's log-probabilities
    (PALR-rank's, or PALR_v2's letters'), both in the listed order. ``weight=0`` is the retriever alone."""
    return log_softmax(retriever_scores) + weight * np.asarray(llm_log_probs, dtype=np.float64)

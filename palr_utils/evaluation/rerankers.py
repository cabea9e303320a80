"""PALR's last step: the fine-tuned LLM re-ranks the retriever's candidates (:class:`Reranker`).

* **Generation** (as in the paper): the model reads the *Recommend_Retrieval*
  prompt and writes "C. title" lines. Each line is mapped back to a candidate by
  its letter, or, failing that, by fuzzy title matching (rapidfuzz). Lines that
  match no candidate are hallucinations: dropped and counted. Duplicates are
  removed and a short list is back-filled in the retriever's order, so every
  user gets 10 items. PALR_v1 writes plain titles from the *Recommend* prompt,
  matched against the whole catalogue.
* **Fast scoring** (beyond the paper, after LlamaRec's verbalizer): one forward
  pass; the next-token logits over the candidates' letters rank all of them at once.
  A small model prefers some letters whatever they label (position bias); *calibration*
  subtracts each letter's mean log-probability over other prompts (Zhao et al., 2021,
  "Calibrate before use"), so that only the preference specific to this prompt ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from palr_utils.core.cache import SECONDS
from palr_utils.core.constants import USER
from palr_utils.core.metrics import log_softmax
from palr_utils.core.titles import prompt_titles
from palr_utils.evaluation.cases import EvalCase, K, rank_in_list
from palr_utils.evaluation.parsing import backfill, match_answer
from palr_utils.llm.loading import format_prompt, generate
from palr_utils.llm.prompts import CANDIDATE_LABELS, rank_prompt, recommend_prompt, recommend_retrieval_prompt
from palr_utils.palr_rank.item_tokens import ITEM_SLOT, ItemTokens
from palr_utils.palr_rank.scoring import rank_scores


def label_token_ids(tokenizer, formatted_prompt: str, n: int) -> list[int]:
    """The token each of the first ``n`` letters becomes when it starts the answer after this prompt."""
    prompt_ids = tokenizer(formatted_prompt, add_special_tokens=False).input_ids
    ids = []
    for label in CANDIDATE_LABELS[:n]:
        full = tokenizer(formatted_prompt + label, add_special_tokens=False).input_ids
        if full[: len(prompt_ids)] != prompt_ids or len(full) != len(prompt_ids) + 1:
            raise ValueError(f"the letter {label!r} is not a single token after the prompt with this tokenizer")
        ids.append(full[-1])
    if len(set(ids)) != n:
        raise ValueError("two candidate letters map to the same token; fast scoring cannot tell them apart")
    return ids


def label_period_id(tokenizer, formatted_prompt: str, n: int) -> int:
    """The token of the period after a candidate's letter ("C." of "C. title") when it starts the answer."""
    ids = set()
    for label in CANDIDATE_LABELS[:n]:
        letter = tokenizer(formatted_prompt + label, add_special_tokens=False).input_ids
        line = tokenizer(formatted_prompt + label + ". x", add_special_tokens=False).input_ids
        if line[: len(letter)] != letter:
            raise ValueError(f"the letter {label!r} is tokenized differently when a period follows it")
        ids.add(line[len(letter)])
    if len(ids) != 1 or tokenizer.decode(list(ids)) != ".":
        raise ValueError("the period after a candidate's letter is not one token with this tokenizer")
    return ids.pop()


@torch.no_grad()
def letter_scores(tokenizer, model, formatted_prompts: list[str], n_candidates: list[int]) -> list[np.ndarray]:
    """One forward pass per batch: the next-token logit of each candidate's letter, per prompt."""
    batch = tokenizer(formatted_prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    # Left padding: the last position is every prompt's end. logits_to_keep=1 skips the vocabulary projection
    # of all other positions (a fifth of the forward pass for SmolLM2 on an 800-token prompt).
    logits = model(**batch, logits_to_keep=1).logits[:, -1].float().cpu()
    # Every prompt ends with the same answer prefix, so the letters' token ids are found once.
    ids = label_token_ids(tokenizer, formatted_prompts[0], max(n_candidates))
    return [logits[row, ids[:n]].numpy() for row, n in enumerate(n_candidates)]


def letter_prior(score_rows: Sequence[np.ndarray]) -> np.ndarray:
    """Each letter's mean log-probability over many prompts: how much the model likes a position whatever
    candidate it labels. The candidates are shuffled per user, so this is bias, not knowledge."""
    if not score_rows:
        raise ValueError("the letter prior needs the scores of at least one prompt")
    longest = max(len(row) for row in score_rows)
    log_probs = np.full((len(score_rows), longest), np.nan)
    for r, row in enumerate(score_rows):
        log_probs[r, : len(row)] = log_softmax(row)  # over this prompt's letters only
    return np.nanmean(log_probs, axis=0)  # a letter counts only in the prompts whose list reaches it


def calibrated_scores(scores: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """A prompt's letter log-probabilities minus the prior: what this prompt adds to the usual preference."""
    if len(scores) > len(prior):
        raise ValueError(f"{len(scores)} letters to rank, but the prior covers only {len(prior)}")
    return log_softmax(scores) - prior[: len(scores)]


class Reranker:
    """Prompts, generation and matching for one model, over :class:`EvalCase` objects."""

    def __init__(
        self, tokenizer, model, titles: Sequence[str], domain: str = "movie", max_title_chars: int = 60,
        item_tokens: ItemTokens | None = None,
    ):  # fmt: skip
        """``item_tokens``: PALR-rank's collaborative item tokens, when it was trained with them."""
        self.tokenizer, self.model, self.domain, self.item_tokens = tokenizer, model, domain, item_tokens
        self.titles = prompt_titles(list(titles), max_title_chars)

    def _format(self, prompt: str) -> str:
        return format_prompt(self.tokenizer, prompt)

    def text_length(self, case: EvalCase) -> int:
        """The characters of the case's history and candidate titles: what makes one prompt longer than another
        (the rest of a prompt is the same for every user), for ``run_method(..., sort_by=...)``."""
        return sum(len(self.titles[i]) for i in [*case.history, *case.listed])

    def v1_prompt(self, case: EvalCase) -> str:
        return self._format(recommend_prompt([self.titles[i] for i in case.history], K, case.keywords, self.domain))

    def v2_prompt(self, case: EvalCase) -> str:
        return self._format(recommend_retrieval_prompt(
            [self.titles[i] for i in case.history], [self.titles[i] for i in case.listed], K, case.keywords,
            self.domain,
        ))  # fmt: skip

    def rank_prompt(self, case: EvalCase) -> str:
        """PALR-rank's prompt (each candidate's line follows it, see palr_utils.palr_rank); a slot after each title
        where the model has item tokens."""
        slot = ITEM_SLOT if self.item_tokens is not None else ""
        return self._format(rank_prompt([self.titles[i] + slot for i in case.history], case.keywords, self.domain))

    def score_rank(self, cases: list[EvalCase]) -> list[dict]:
        """PALR-rank: each case's candidates ranked by their scores, all in one forward pass; the scores'
        log-softmax is kept (in the listed order) so that fusion with the retriever needs no second pass."""
        rows = rank_scores(self.tokenizer, self.model, [self.rank_prompt(c) for c in cases],
                           [[self.titles[i] for i in c.listed] for c in cases], self.item_tokens,
                           [c.history for c in cases], [c.listed for c in cases])  # fmt: skip
        records = []
        for case, row in zip(cases, rows, strict=True):
            log_probs = log_softmax(row)
            order = [case.listed[j] for j in np.argsort(-log_probs, kind="stable")]
            records.append({"final": order[:K], "rank": rank_in_list(case.target, order[:K]),
                            "log_probs": [round(float(v), 6) for v in log_probs]})  # fmt: skip
        return records

    def generate_v1(self, cases: list[EvalCase], max_new_tokens: int) -> list[dict]:
        outputs = generate(self.tokenizer, self.model, [self.v1_prompt(c) for c in cases], max_new_tokens)
        records = []
        for case, text in zip(cases, outputs, strict=True):
            allowed = [i for i in range(len(self.titles)) if i not in case.seen]  # the whole unseen catalogue
            parsed = match_answer(text, allowed, self.titles, seen=case.seen)
            records.append(_record(case, text, parsed.items, parsed))
        return records

    def generate_v2(self, cases: list[EvalCase], max_new_tokens: int) -> list[dict]:
        """Generated "letter. title" answers that must start with one of the case's candidate letters and a
        period, so the answer cannot drift into the other task's format ("1. title") that PALR_v2 also learned,
        nor into a word that starts with a letter ("I'm sorry, …")."""
        prompts = [self.v2_prompt(c) for c in cases]
        n_letters = max(len(c.listed) for c in cases)
        letter_ids = label_token_ids(self.tokenizer, prompts[0], n_letters)
        first_ids = [letter_ids[: len(c.listed)] for c in cases]
        period = [label_period_id(self.tokenizer, prompts[0], n_letters)]
        outputs, first_logits = generate(self.tokenizer, self.model, prompts, max_new_tokens, first_ids,
                                         second_token_ids=period, return_first_logits=True)  # fmt: skip
        records = []
        for row, (case, text) in enumerate(zip(cases, outputs, strict=True)):
            labels = dict(zip(CANDIDATE_LABELS, case.listed, strict=False))
            parsed = match_answer(text, case.listed, self.titles, labels, seen=case.seen)
            # the first step read the letters' logits before the constraint: fast scoring's very numbers
            letters = first_logits[row, first_ids[row]].numpy()
            records.append(_record(case, text, parsed.items, parsed)
                           | {"letter_logits": [round(float(v), 6) for v in letters]})  # fmt: skip
        return records

    def letter_scores_v2(self, cases: list[EvalCase]) -> list[np.ndarray]:
        """Each case's next-token logits of its candidates' letters after the *Recommend_Retrieval* prompt."""
        return letter_scores(self.tokenizer, self.model, [self.v2_prompt(c) for c in cases],
                             [len(c.listed) for c in cases])  # fmt: skip

    def letter_prior_v2(self, cases: list[EvalCase], batch_size: int) -> np.ndarray:
        """The mean log-probability of each letter over these cases' prompts (use validation cases)."""
        rows = [row for start in range(0, len(cases), batch_size)
                for row in self.letter_scores_v2(cases[start : start + batch_size])]  # fmt: skip
        return letter_prior(rows)

    def score_v2_fast(self, cases: list[EvalCase], prior: np.ndarray | None = None) -> list[dict]:
        """Rank all candidates by their letters' logits; with a ``prior``, by the calibrated log-probabilities."""
        scores = self.letter_scores_v2(cases)
        if prior is not None:
            scores = [calibrated_scores(row, prior) for row in scores]
        return [letter_record(case, row) for case, row in zip(cases, scores, strict=True)]


def letter_record(case: EvalCase, scores: np.ndarray) -> dict:
    """A case's candidates ranked by their letter scores (in the listed order)."""
    order = [case.listed[j] for j in np.argsort(-scores, kind="stable")]
    # kept in the listed order as log-probabilities over the list, so that fusion can read them as it reads
    # PALR-rank's (a per-user shift of calibrated scores changes no order)
    return {"final": order[:K], "rank": rank_in_list(case.target, order[:K]),
            "log_probs": [round(float(v), 6) for v in log_softmax(scores)]}  # fmt: skip


def fast_records_from_generation(cases: list[EvalCase], generation: pd.DataFrame) -> pd.DataFrame:
    """Fast scoring of the ``cases`` PALR_v2 generated for, read from its generation records: the first step of
    generation is a forward pass over the same prompt, and its letters' logits were kept (``letter_logits``).
    Cases without such a record (not generated for, or records written before they kept the logits) are left
    out: score them with :meth:`Reranker.score_v2_fast`. Their ``seconds`` are left empty (NaN): generation paid
    for the pass, and a method's seconds per user (``summarize``) is the mean over the users it scored itself."""
    logits = generation.set_index(USER)["letter_logits"] if "letter_logits" in generation else pd.Series()
    rows = [{USER: case.user, **letter_record(case, np.asarray(logits.loc[case.user], dtype=float)),
             SECONDS: float("nan")}
            for case in cases if case.user in logits.index and isinstance(logits.loc[case.user], list)]  # fmt: skip
    return pd.DataFrame(rows, columns=[USER, "final", "rank", "log_probs", SECONDS])


def fast_records_via_generation(cases: list[EvalCase], generation: pd.DataFrame,
                                score_others: Callable[[list[EvalCase]], pd.DataFrame]) -> pd.DataFrame:
    """Fast scoring of every case, in the ``cases``' order: read from the generation records where they kept the
    letters' logits (:func:`fast_records_from_generation`), and from ``score_others`` for the others only, which
    it receives in the cases' order and answers with their records (a frame with ``user``; notebook 05:
    ``run_method(reranker.score_v2_fast, others, ...)``, cached). Read users have NaN seconds; ``score_others`` is
    not called when every case was read."""
    reused = fast_records_from_generation(cases, generation)
    read = set(reused[USER])
    others = [case for case in cases if case.user not in read]
    parts = [reused]
    if others:
        scored = score_others(others)
        missing = sorted({case.user for case in others} - set(scored[USER]))
        if missing:
            raise ValueError(f"score_others returned no record for {len(missing)} of the {len(others)} users it was "
                             f"given (first: {missing[:5]}); it must score every case it receives")
        parts.append(scored)
    # an empty part is left out: concatenated, it would turn every column into objects
    combined = pd.concat([part for part in parts if len(part)] or [reused], ignore_index=True)
    return combined.set_index(USER).loc[[case.user for case in cases]].reset_index()


def calibrated_records(cases: list[EvalCase], fast_records: pd.DataFrame, prior: np.ndarray) -> pd.DataFrame:
    """Calibrated fast scoring read from uncalibrated fast scoring's records of the same cases, without a second
    forward pass: the records keep each prompt's letter log-probabilities, and calibration only subtracts the
    prior from them. Each user keeps the seconds of the pass that scored it."""
    by_user = fast_records.set_index(USER)
    rows = []
    for case in cases:
        fast = by_user.loc[case.user]
        record = letter_record(case, calibrated_scores(np.asarray(fast["log_probs"], dtype=float), prior))
        rows.append({USER: case.user, **record, SECONDS: fast[SECONDS]})
    return pd.DataFrame(rows)


def _record(case: EvalCase, text: str, items: list[int], parsed) -> dict:
    final = backfill(items, case.retrieved, K)
    return {
        "final": final, "rank": rank_in_list(case.target, final), "raw_output": text, "n_lines": parsed.n_lines,
        "n_matched": len(items), "n_hallucinated": parsed.n_hallucinated, "n_duplicates": parsed.n_duplicates,
        "n_seen": parsed.n_seen, "n_disagreements": parsed.n_disagreements,
    }  # fmt: skip

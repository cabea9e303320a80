"""PALR-rank's training examples: a training prefix, the one-step-back retriever's candidates, and the
next item as the answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from palr_utils.core.constants import ITEM, SPLIT, TITLE, USER, VALID
from palr_utils.core.metrics import log_softmax
from palr_utils.core.titles import prompt_titles
from palr_utils.finetune.instructions import keywords_without_answers
from palr_utils.llm.prompts import fit_history, rank_candidate, rank_prompt
from palr_utils.palr_rank.item_tokens import ITEM_SLOT
from palr_utils.retrieval.candidates import RANK, RANK_PREFIXES_EXPORTED, SCORE, STEPS_BACK
from palr_utils.retrieval.sequences import SequenceData

RANK_TASK = "rank"


def build_rank_examples(
    data: SequenceData,
    items: pd.DataFrame,
    users: Sequence[int],
    candidates: pd.DataFrame,
    *,
    n_candidates: int,
    n_history: int,
    seed: int,
    profiles: dict[int, list[str]] | None = None,
    domain: str = "movie",
    max_title_chars: int = 60,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    random_negatives: int = 0,
    full_data: SequenceData | None = None,
    item_slots: bool = False,
) -> pd.DataFrame:
    """One ranking example per user whose next item is among the retriever's top ``n_candidates``.

    ``data`` is the training data one step back (:meth:`SequenceData.one_step_back`) and ``candidates`` the
    validation-split export of a retriever trained on it: the history is each user's training items but the last,
    the answer the last one, which that retriever never saw. Validation and test items appear nowhere.

    Returns columns: user, task, prompt, candidates (item ids, in a seeded shuffled order), candidate_titles,
    answer (the index of the next item among the candidates), history, label (the next item, in a list), and
    prior: that retriever's log-softmax over the candidates, in the listed order (what residual training adds
    to the LLM's scores, as fusion adds the full retriever's at test).
    With ``count_tokens``/``max_tokens`` the oldest history items are dropped until prompt and lines fit.

    ``random_negatives`` (our extension, issue 27's third lever): that many of the retriever's lowest-ranked
    wrong candidates give way to items drawn at random from the catalogue, easy negatives beside the hard ones.
    They are never items of the user's, in any split of ``full_data`` (the data before :meth:`one_step_back`,
    required then), so no validation or test item enters an example. The retriever has no score for them:
    such examples have no prior (an empty list), and residual training refuses them.

    ``item_slots`` (issue 27's second lever): each history title in the prompt is followed by an ``ITEM_SLOT``,
    where :mod:`palr_utils.palr_rank.item_tokens` puts the item's collaborative token (``history`` lists them).
    """
    if random_negatives and full_data is None:
        raise ValueError("random_negatives needs full_data (the data before one_step_back): a random negative must "
                         "not be one of the user's own validation or test items")  # fmt: skip
    if not 0 <= random_negatives < n_candidates:
        raise ValueError(f"random_negatives ({random_negatives}) must lie between 0 and n_candidates - 1 "
                         f"({n_candidates - 1}): the answer keeps one place")  # fmt: skip
    table = items.sort_values(ITEM).reset_index(drop=True)
    titles = prompt_titles(list(table[TITLE]), max_title_chars)
    rows = candidates[(candidates[SPLIT] == VALID) & (candidates[RANK] < n_candidates)].sort_values([USER, RANK])
    retrieved = {int(u): g[ITEM].astype(int).tolist() for u, g in rows.groupby(USER)}
    retriever_scores = {int(u): dict(zip(g[ITEM].astype(int), g[SCORE].astype(float), strict=True))
                        for u, g in rows.groupby(USER)}  # fmt: skip
    profiles = profiles or {}
    examples = []
    for user in map(int, users):
        answer, shortlist = int(data.valid[user]), retrieved.get(user, [])
        if answer not in shortlist:
            continue  # the answer is not in the list: nothing to rank (as at test time, a miss for any ranker)
        # The scores do not depend on the order (see the module's docstring); shuffling only keeps the printed
        # examples from always showing the retriever's favourite first.
        rng = np.random.default_rng([seed, 7, user])  # per user: the same order whoever else is sampled
        if random_negatives:
            shortlist = _with_random_negatives(shortlist, answer, random_negatives, full_data, user, rng)
        listed = [int(i) for i in rng.permutation(shortlist)]
        keywords = keywords_without_answers(profiles.get(user, []), [titles[answer]])
        history = [int(i) for i in data.history(user, VALID)[-n_history:]]
        listed_titles = [titles[i] for i in listed]
        slot = ITEM_SLOT if item_slots else ""  # counted as its text: more tokens than the one it becomes
        lines_cost = sum(count_tokens(rank_candidate(t + slot)) for t in listed_titles) if count_tokens else 0
        budget = max_tokens - lines_cost if count_tokens and max_tokens else None
        prompt, history = fit_history(
            partial(_titled_rank_prompt, titles=titles, keywords=keywords, domain=domain, slot=slot), history,
            lambda prompt: budget is None or count_tokens(prompt) <= budget,  # noqa: B023 - used at once
        )  # fmt: skip
        examples.append({
            USER: user, "task": RANK_TASK, "prompt": prompt, "candidates": listed,
            "candidate_titles": listed_titles, "answer": listed.index(answer), "history": history, "label": [answer],
            "prior": [] if random_negatives else  # the retriever scored none of the random items
            [round(float(v), 6) for v in log_softmax([retriever_scores[user][i] for i in listed])],
        })  # fmt: skip
    columns = [USER, "task", "prompt", "candidates", "candidate_titles", "answer", "history", "label", "prior"]
    return pd.DataFrame(examples, columns=columns)


def build_prefix_rank_examples(
    data: SequenceData, items: pd.DataFrame, users: Sequence[int], candidates: pd.DataFrame, *, prefixes: int,
    **kwargs,
) -> pd.DataFrame:
    """:func:`build_rank_examples` for each user's last ``prefixes`` training prefixes (issue 27's fourth lever:
    more examples from the same users), concatenated, with a ``steps_back`` column: 1 for the last training item
    as the answer (the examples of ``prefixes=1``), 2 for the item before it, and so on.

    ``data`` is the full data and ``candidates`` notebook 03's :func:`~palr_utils.retrieval.candidates.
    export_rank_candidates`; every answer is a training item, every history what came before it. ``full_data``
    (for random negatives) is ``data`` itself.
    """
    if not 1 <= prefixes <= RANK_PREFIXES_EXPORTED:
        raise ValueError(f"rank_prefixes ({prefixes}) must lie between 1 and {RANK_PREFIXES_EXPORTED}, the prefixes "
                         "notebook 03 exports")  # fmt: skip
    if STEPS_BACK not in candidates or int(candidates[STEPS_BACK].max()) < prefixes:
        raise ValueError(f"the candidates hold fewer than {prefixes} prefixes per user (no {STEPS_BACK!r} column, or "
                         "too few): they were exported by an older notebook 03; run notebook 03 again")  # fmt: skip
    frames = []
    for steps in range(1, prefixes + 1):
        earlier = data.steps_back(steps)  # steps=1: the one-step-back data of build_rank_examples' callers
        at_prefix = set(earlier.with_prefix().tolist())
        frames.append(build_rank_examples(
            earlier, items, [u for u in users if int(u) in at_prefix], candidates[candidates[STEPS_BACK] == steps],
            full_data=data, **kwargs,
        ).assign(**{STEPS_BACK: steps}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _with_random_negatives(
    shortlist: list[int], answer: int, n_random: int, full_data: SequenceData, user: int, rng: np.random.Generator
) -> list[int]:
    """The answer, the retriever's best wrong candidates, and ``n_random`` catalogue items the user never had."""
    hard = [i for i in shortlist if i != answer][: max(0, len(shortlist) - 1 - n_random)]  # a short list: none
    own = {*full_data.train[user].tolist(), int(full_data.valid[user]), int(full_data.test[user])}
    pool = np.setdiff1d(np.arange(full_data.n_items), [*own, *shortlist])
    return [answer, *hard, *map(int, rng.choice(pool, size=min(n_random, len(pool)), replace=False))]


def _titled_rank_prompt(shown: list[int], titles: Sequence[str], keywords: list[str], domain: str, slot: str) -> str:
    return rank_prompt([titles[i] + slot for i in shown], keywords, domain)

"""PALR's instruction data: the *Recommend* and *Recommend_Retrieval* tasks, built from training data only.

For each fine-tuning user the training history is cut into a prefix (what the
prompt shows) and the items that follow it (the label), exactly as notebook
03 cut it when exporting candidates for training prefixes. Validation and test
items never appear in a prompt or a label.

The paper's two techniques are here too:

* **3-hop enrichment** - a short label list is filled up with items from the
  user's 3-hop affinity on the training graph (user -> item -> user -> item),
  ranked by how many such paths reach them;
* **random swaps** - an item of the shown history and an item of the label trade
  places, so the model does not learn that labels are always the very latest items.

Profiles in the prompts of fine-tuning users are written from the prefix alone (``profile_history``), and
a keyword that names one of the example's answers is dropped: no text in a prompt gives an answer away.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy import sparse

from palr_utils.core.constants import ATTRIBUTES, ITEM, SPLIT, TITLE, TRAIN, USER
from palr_utils.core.titles import names_title, prompt_titles
from palr_utils.llm.prompts import CANDIDATE_LABELS, fit_history, recommend_prompt, recommend_retrieval_prompt
from palr_utils.retrieval.candidates import training_prefix
from palr_utils.retrieval.sequences import SequenceData

RECOMMEND, RECOMMEND_RETRIEVAL = "recommend", "recommend_retrieval"


@dataclass(frozen=True)
class InstructionConfig:
    n_history: int = 20  # most recent prefix items shown in the prompt
    n_targets: int = 10  # label length (short labels are enriched up to this)
    n_candidates: int = 20  # length of the candidate list in Recommend_Retrieval
    # Answers hidden in that list (the first of the label; None: all n_targets). Evaluation asks for 10 of the
    # retriever's candidates of which at most one is right: with 10 answers among 15 candidates a model learns
    # to copy the list, so the laptop presets train with a few answers among many candidates instead.
    n_retrieval_targets: int | None = None
    swap_probability: float = 0.3  # chance of one history/label swap per example
    max_title_chars: int = 60  # long titles (Beauty) are cut at a word boundary (palr_utils.core.titles.prompt_titles)


class TrainingGraph:
    """Who interacted with what in training (prefixes and labels alike; never validation or test).

    A sparse user x item matrix X: the number of 3-hop paths from user u to item j is
    sum over other users v of (items u and v share) * X[v, j], two sparse products.
    """

    def __init__(self, data: SequenceData):
        lengths = [len(items) for items in data.train]
        rows = np.repeat(np.arange(data.n_users), lengths)
        matrix = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, np.concatenate(data.train))),
            shape=(data.n_users, data.n_items),
        )
        matrix.data[:] = 1.0  # a repeated pair counts once
        self.matrix, self.matrix_t = matrix, matrix.T.tocsr()
        self._paths: dict[int, np.ndarray] = {}

    def path_counts(self, user: int) -> np.ndarray:
        """Number of user -> item -> other user -> item paths reaching each item."""
        if user not in self._paths:
            shared = np.asarray((self.matrix @ self.matrix[user].T).todense()).ravel()  # items shared with each user
            shared[user] = 0.0  # paths go through *other* users
            self._paths = {user: self.matrix_t @ shared}  # keep one: the builder asks twice in a row
        return self._paths[user]

    def three_hop(self, user: int, exclude: set[int]) -> list[int]:
        """Items reached by user -> item -> other user -> item, most paths first (ties by item id)."""
        paths = self.path_counts(user)
        order = np.lexsort((np.arange(len(paths)), -paths))
        return [int(i) for i in order if paths[i] > 0 and int(i) not in exclude]


def enrich_targets(targets: list[int], graph: TrainingGraph, user: int, n_targets: int, exclude: set[int]) -> list[int]:
    """Fill ``targets`` up to ``n_targets`` with the user's 3-hop affinity items."""
    if len(targets) >= n_targets:
        return targets
    return targets + graph.three_hop(user, exclude | set(targets))[: n_targets - len(targets)]


def swap_history_and_label(history: list[int], label: list[int], rng: np.random.Generator) -> tuple[list, list]:
    """Exchange one random history item with one random label item (the multiset is kept)."""
    if not history or not label:
        return history, label
    history, label = list(history), list(label)
    i, j = int(rng.integers(len(history))), int(rng.integers(len(label)))
    history[i], label[j] = label[j], history[i]
    return history, label


def profile_history(data: SequenceData, user: int, spec: InstructionConfig) -> np.ndarray:
    """The history a fine-tuning user's profile may be written from: the prefix their examples show.

    A profile written from the whole training history would name the items that follow the prefix, which
    are the examples' answers; the model would learn to copy answers out of the preferences line, and at
    test time that line names only items already seen (notebook 02 writes these profiles apart).
    """
    return training_prefix(data.train[user], spec.n_targets)[0]


def keywords_without_answers(keywords: Sequence[str], answer_titles: Sequence[str]) -> list[str]:
    """Drop profile keywords that name an answer. Profiles come from the prefix, but the random swap moves a
    prefix item into the answers; its title must not stand in the prompt as a preference then."""
    return [k for k in keywords if not any(names_title(k, title) for title in answer_titles)]


def completion(titles: Sequence[str]) -> str:
    """The *Recommend* answer: numbered titles, one per line (TRL appends the end-of-sequence token).

    The numbers matter for greedy decoding: bare titles start with thousands of different tokens, so no
    single one gets much probability, and a small model's greedy first token stays whatever the base model
    preferred (SmolLM2 echoed the prompt: "The user's preferences: ..."). "1." is one certain first token,
    and after it the model is inside the list format it was trained on.
    """
    return "\n".join(f"{rank}. {title}" for rank, title in enumerate(titles, start=1))


def labelled_completion(targets: Sequence[int], listed: Sequence[int], titles: Sequence[str]) -> str:
    """The *Recommend_Retrieval* answer: "C. title" per target, the letter its place in the candidate list."""
    position = {item: index for index, item in enumerate(listed)}
    return "\n".join(f"{CANDIDATE_LABELS[position[t]]}. {titles[t]}" for t in targets)


def hard_negatives(
    user: int, targets: list[int], genres: Sequence[set[str]], graph: TrainingGraph, retrieved: Sequence[int],
    exclude: set[int], n: int, rng: np.random.Generator,
) -> list[int]:  # fmt: skip
    """Up to ``n`` plausible wrong answers: the retriever's top items, co-watched items, same-genre items.

    ``genres`` holds each item's attributes as a set, indexed by item id.
    """
    target_genres = set().union(*(genres[t] for t in targets))
    same_genre = itertools.islice((int(i) for i in rng.permutation(len(genres)) if genres[i] & target_genres), 4 * n)
    co_watched = graph.three_hop(user, exclude)[: 2 * n]
    pool: list[int] = []
    for source in (list(retrieved), co_watched, list(same_genre)):  # the retriever's are the hardest
        for item in source:
            item = int(item)
            if item not in exclude and item not in targets and item not in pool:
                pool.append(item)
    return pool[:n]


@dataclass
class _Catalogue:
    """What every example of a run reads: prompt titles, genres, the training graph, the retriever's lists."""

    titles: list[str]
    genres: list[set[str]]
    graph: TrainingGraph
    retrieved: dict[int, np.ndarray]
    domain: str
    count_tokens: Callable[[str], int] | None
    max_tokens: int | None

    def fit(self, make_prompt: Callable[[list[str]], str], history: list[int], answer: str) -> tuple[str, list]:
        """The prompt with the oldest history items dropped until prompt and answer fit the model's context."""

        def fits(prompt: str) -> bool:
            return not (self.count_tokens and self.max_tokens) or self.count_tokens(prompt + answer) <= self.max_tokens

        return fit_history(lambda shown: make_prompt([self.titles[i] for i in shown]), history, fits)


def _history_and_label(data: SequenceData, user: int, spec: InstructionConfig, graph: TrainingGraph,
                       rng: np.random.Generator) -> tuple[list[int], list[int], set[int]]:  # fmt: skip
    """The shown history, the (enriched, perhaps swapped) label, and the items no negative may be."""
    prefix, following = training_prefix(data.train[user], spec.n_targets)  # as profile_history cuts it
    held_out = {int(data.valid[user]), int(data.test[user])}
    seen = set(map(int, data.train[user]))
    label = enrich_targets(list(map(int, following)), graph, user, spec.n_targets, seen | held_out)
    history = list(map(int, prefix[-spec.n_history :]))
    if rng.random() < spec.swap_probability:
        history, label = swap_history_and_label(history, label, rng)
    return history, label, seen | held_out


def _recommend_example(cat: _Catalogue, user: int, history: list[int], label: list[int], keywords: list[str]) -> dict:
    """*Recommend*: the history (and preferences) in, the label's titles out."""
    answer = completion([cat.titles[i] for i in label])
    prompt, shown = cat.fit(partial(recommend_prompt, n=len(label), keywords=keywords, domain=cat.domain),
                            history, answer)  # fmt: skip
    return {USER: user, "task": RECOMMEND, "history": shown, "label": label,
            "prompt": prompt, "completion": answer, "candidates": []}  # fmt: skip


def _retrieval_example(cat: _Catalogue, user: int, history: list[int], label: list[int], keywords: list[str], *,
                       excluded: set[int], spec: InstructionConfig, rng: np.random.Generator) -> dict:  # fmt: skip
    """*Recommend_Retrieval*: the answers hidden among hard negatives, picked by their candidate letters."""
    answers = label[: spec.n_retrieval_targets or spec.n_targets]
    # The label's later items are not negatives: they are right answers too, only not asked for here.
    exclude = excluded | set(history) | set(label)
    negatives = hard_negatives(user, answers, cat.genres, cat.graph, cat.retrieved.get(user, []), exclude,
                               spec.n_candidates - len(answers), rng)  # fmt: skip
    listed = [int(i) for i in rng.permutation(answers + negatives)]
    make_prompt = partial(
        recommend_retrieval_prompt,
        candidate_titles=[cat.titles[i] for i in listed],
        n=len(answers),
        keywords=keywords_without_answers(keywords, [cat.titles[i] for i in answers]),
        domain=cat.domain,
    )
    answer = labelled_completion(answers, listed, cat.titles)
    prompt, shown = cat.fit(make_prompt, history, answer)
    return {USER: user, "task": RECOMMEND_RETRIEVAL, "history": shown, "label": answers,
            "prompt": prompt, "completion": answer, "candidates": listed}  # fmt: skip


def build_instruction_examples(
    data: SequenceData,
    items: pd.DataFrame,
    users: Sequence[int],
    spec: InstructionConfig,
    seed: int,
    *,
    profiles: dict[int, list[str]] | None = None,
    candidates: pd.DataFrame | None = None,
    domain: str = "movie",
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> pd.DataFrame:
    """One *Recommend* and (with candidates) one *Recommend_Retrieval* example per user.

    Returns columns: user, task, prompt, completion, and the item ids behind them: history, label, candidates.
    With ``count_tokens`` and ``max_tokens``, the oldest history items are dropped until prompt plus
    completion fit the model's context (TRL would otherwise cut the end, i.e. the label).
    """
    items = items.sort_values(ITEM).reset_index(drop=True)
    retrieved = {}
    if candidates is not None:
        rows = candidates[candidates[SPLIT] == TRAIN]
        retrieved = {int(u): group[ITEM].to_numpy() for u, group in rows.groupby(USER)}
    cat = _Catalogue(titles=prompt_titles(list(items[TITLE]), spec.max_title_chars),
                     genres=[set(a) for a in items[ATTRIBUTES]], graph=TrainingGraph(data), retrieved=retrieved,
                     domain=domain, count_tokens=count_tokens, max_tokens=max_tokens)  # fmt: skip
    profiles = profiles or {}
    examples = []
    for user in map(int, users):
        # One random stream per user and task: a user's examples do not depend on which other users are
        # sampled, and changing the Recommend_Retrieval settings leaves the Recommend examples as they were.
        history, label, excluded = _history_and_label(
            data, user, spec, cat.graph, np.random.default_rng([seed, 4, user])
        )
        keywords = keywords_without_answers(profiles.get(user, []), [cat.titles[i] for i in label])
        examples.append(_recommend_example(cat, user, history, label, keywords))
        if candidates is not None:
            rng = np.random.default_rng([seed, 6, user])
            examples.append(_retrieval_example(cat, user, history, label, keywords, excluded=excluded, spec=spec,
                                               rng=rng))  # fmt: skip
    return pd.DataFrame(examples)

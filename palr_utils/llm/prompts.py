"""The natural-language prompts PALR sends to the LLM. Read them: they are half of the method.

Items are described by title (and genres where the data has them); the history
is shown oldest first, most recent last, and cut to the most recent items so
the prompt fits the model's context.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from palr_utils.core.constants import DOMAINS

PROFILE_SYSTEM = "You are a helpful assistant that describes a person's taste in a few short keywords."
# The answer is started for the model: small models otherwise tend to repeat the prompt.
PROFILE_ANSWER_PREFIX = "Keywords:"

# How each kind of catalogue is spoken of: (past verb, plural noun, history noun, attribute noun).
DOMAIN_WORDS = {
    "movie": ("watched", "movies", "watching", "genres"),
    "product": ("bought", "products", "purchase", "categories"),
    "book": ("read", "books", "reading", "genres"),
    "item": ("chose", "items", "interaction", "categories"),
}
assert tuple(DOMAIN_WORDS) == DOMAINS, "every domain needs its words"
_VERBS = {domain: (verb, noun) for domain, (verb, noun, _, _) in DOMAIN_WORDS.items()}
_HISTORY_WORDS = {domain: (history, noun, verb) for domain, (verb, noun, history, _) in DOMAIN_WORDS.items()}
# Candidates are listed as "A. title", "B. title", ...: the model answers with letters and titles,
# and the letter of its first answer is one token whose logits can rank all candidates at once.
CANDIDATE_LABELS = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]


def history_lines(titles: Sequence[str]) -> list[str]:
    """A history as the prompts show it: one "- title" line per item, oldest first."""
    return [f"- {t}" for t in titles]


def describe_item(title: str, attributes: Sequence[str] = ()) -> str:
    """'Toy Story (1995) [Animation, Comedy]'; just the title when there are no attributes."""
    return f"{title} [{', '.join(attributes)}]" if len(attributes) else title


def top_attributes(attribute_lists: Sequence[Sequence[str]], n: int = 3) -> list[str]:
    """The ``n`` most frequent attributes (genres) in a history, most frequent first, ties by name."""
    counts = Counter(a for attributes in attribute_lists for a in attributes)
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def fit_history(make_prompt: Callable[[list], str], history: Sequence, fits: Callable[[str], bool]) -> tuple[str, list]:
    """The prompt of the most recent part of ``history`` that ``fits`` accepts, dropping the oldest item first
    (one item at least), and the part it shows: the one way every prompt here is fitted to a model's context."""
    history = list(history)
    prompt = make_prompt(history)
    while len(history) > 1 and not fits(prompt):
        history = history[1:]
        prompt = make_prompt(history)
    return prompt, history


def profile_prompt(
    titles: Sequence[str],
    attribute_lists: Sequence[Sequence[str]],
    domain: str = "movie",
    user_info: str | None = None,
    max_items: int = 20,
) -> str:
    """Ask for a user's preferences as keywords, given the most recent ``max_items`` of the history."""
    if not len(titles):
        raise ValueError("cannot describe a user with an empty history")
    verb, noun = _VERBS[domain]
    titles, attribute_lists = list(titles)[-max_items:], list(attribute_lists)[-max_items:]
    lines = [f"- {describe_item(t, a)}" for t, a in zip(titles, attribute_lists, strict=True)]
    favourite = top_attributes(attribute_lists)
    parts = [f"A user {verb} these {noun}, oldest first:", *lines]
    if favourite:
        parts.append(f"Their most frequent {DOMAIN_WORDS[domain][3]}: {', '.join(favourite)}.")
    if user_info:
        parts.append(f"About the user: {user_info}.")
    parts.append(f"What kinds of {noun} does this user like? Reply with 3 to 5 keywords, separated by commas.")
    return "\n".join(parts)


EXPLAIN_SYSTEM = "You are a friendly movie and product recommender who explains recommendations briefly."


def explanation_prompt(history_titles: Sequence[str], recommended: str, domain: str = "movie") -> str:
    """Ask for a short, natural-language reason why ``recommended`` suits this history."""
    verb, noun = _VERBS[domain]
    recent = "; ".join(history_titles)
    return (
        f"A user recently {verb} these {noun}: {recent}.\n"
        f"In one or two sentences, explain why they might enjoy {recommended}."
    )


def recommend_prompt(history_titles: Sequence[str], n: int, keywords: Sequence[str] = (), domain: str = "movie") -> str:
    """The *Recommend* instruction."""
    noun_history, noun, verb = _HISTORY_WORDS[domain]
    lines = [f"The user's {noun_history} history, oldest first:"]
    lines += history_lines(history_titles)
    if keywords:
        lines.append(f"The user's preferences: {', '.join(keywords)}.")
    lines.append(f"Recommend {n} other {noun} the user is likely to have {verb} next, as a numbered list.")
    return "\n".join(lines)


def recommend_retrieval_prompt(
    history_titles: Sequence[str], candidate_titles: Sequence[str], n: int, keywords: Sequence[str] = (),
    domain: str = "movie",
) -> str:  # fmt: skip
    """The *Recommend_Retrieval* instruction: the same, choosing only from a candidate list."""
    _, noun, verb = _HISTORY_WORDS[domain]
    lines = _history_and_candidates(history_titles, candidate_titles, keywords, domain)
    lines.append(
        f"From the candidates only, recommend {n} {noun} the user is likely to have {verb} next, "
        "one per line with its letter."
    )
    return "\n".join(lines)


def _history_and_candidates(
    history_titles: Sequence[str], candidate_titles: Sequence[str], keywords: Sequence[str], domain: str
) -> list[str]:
    """The lines both candidate prompts share: history, preferences, the lettered candidates."""
    noun_history, noun, _ = _HISTORY_WORDS[domain]
    if len(candidate_titles) > len(CANDIDATE_LABELS):
        raise ValueError(f"at most {len(CANDIDATE_LABELS)} candidates can be labelled, not {len(candidate_titles)}")
    lines = [f"The user's {noun_history} history, oldest first:", *history_lines(history_titles)]
    if keywords:
        lines.append(f"The user's preferences: {', '.join(keywords)}.")
    lines.append(f"Candidate {noun}:")
    lines += [f"{label}. {t}" for label, t in zip(CANDIDATE_LABELS, candidate_titles, strict=False)]
    return lines


def rank_prompt(history_titles: Sequence[str], keywords: Sequence[str] = (), domain: str = "movie") -> str:
    """The question PALR-rank (palr_utils.palr_rank) answers for every candidate: the history, the preferences and
    the instruction. The candidates are not listed here: each is appended after the prompt as its own
    :func:`rank_candidate` line, and reads the prompt but not the other candidates."""
    noun_history, noun, verb = _HISTORY_WORDS[domain]
    lines = [f"The user's {noun_history} history, oldest first:", *history_lines(history_titles)]
    if keywords:
        lines.append(f"The user's preferences: {', '.join(keywords)}.")
    question = f"answer Yes if the user is likely to have {verb} it next, No otherwise."
    lines.append(f"For each candidate {noun[:-1]}, {question}")
    return "\n".join(lines)


def rank_candidate(title: str) -> str:
    """One candidate's line after the ranking prompt; the model's next token, Yes or No, is its verdict."""
    return f"{title}:"

"""Generated answers back to items: lines parsed, matched to candidates by letter or title,
and back-filled in the retriever's order."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from palr_utils.core.titles import best_match, title_variants

_LINE = re.compile(r"^\s*(?:[-*•]\s*)?(?:(?P<label>[A-Za-z])[.)]\s+|\d+[.)]\s*)?(?P<title>.*?)\s*$")


@dataclass
class ParsedList:
    """What came out of one generated answer."""

    items: list[int] = field(default_factory=list)  # matched items, in the model's order, no duplicates
    n_lines: int = 0  # non-empty answer lines
    n_hallucinated: int = 0  # lines that named no allowed item (nor a seen one)
    n_duplicates: int = 0
    n_seen: int = 0  # lines that named an item the user has already seen
    n_disagreements: int = 0  # lines whose letter and title name two different items (the letter wins)


def answer_lines(text: str) -> list[tuple[str | None, str]]:
    """Split an answer into (letter or None, title) pairs, dropping numbering, bullets and quotes."""
    pairs = []
    for line in text.splitlines():
        match = _LINE.match(line)
        title = match["title"].strip().strip("\"'“”`*").strip()
        if title or match["label"]:
            pairs.append((match["label"], title))
    return pairs


def match_answer(
    text: str,
    allowed: Sequence[int],
    titles: Sequence[str],
    labels: dict[str, int] | None = None,
    seen: Collection[int] = (),
) -> ParsedList:
    """Map an answer to items among ``allowed``: by letter when ``labels`` is given, else by fuzzy title.

    Lines naming one of the user's ``seen`` items are counted apart from hallucinations: the model
    repeating the history is a different failure from inventing titles. A line whose letter and title name
    different items ("a. Toy Story" where Toy Story is "A") keeps the letter's item and is counted.
    """
    # Each item is matched by its full title and by its title without the year, whichever is closer:
    # models often drop the year, and plain ratio (unlike partial ratios) does not reward bare substrings.
    allowed_set, seen = set(allowed), set(seen)
    keys, owners = [], []
    for item in [*allowed, *sorted(seen - allowed_set)]:
        for variant in title_variants(titles[item]):
            keys.append(variant)
            owners.append(item)
    parsed = ParsedList()
    for label, title in answer_lines(text):
        parsed.n_lines += 1
        by_label = labels.get(label) if labels and label else None
        index = best_match(title, keys) if title else None
        by_title = owners[index] if index is not None else None
        parsed.n_disagreements += by_label is not None and by_title is not None and by_title != by_label
        item = by_label if by_label is not None else by_title
        if item is None:
            parsed.n_hallucinated += 1
        elif item in seen:
            parsed.n_seen += 1
        elif item in parsed.items:
            parsed.n_duplicates += 1
        else:
            parsed.items.append(int(item))
    return parsed


def backfill(items: Sequence[int], retriever_order: Sequence[int], k: int = 10) -> list[int]:
    """The model's items first, then the retriever's best remaining ones, ``k`` in total."""
    final = list(dict.fromkeys(int(i) for i in items))[:k]
    for item in retriever_order:
        if len(final) >= k:
            break
        if int(item) not in final:
            final.append(int(item))
    return final

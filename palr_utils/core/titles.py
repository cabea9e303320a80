"""Item titles as the LLM reads and writes them: cleaned on load, shortened and made unique for prompts, and
matched back to items when a model names them.

* :func:`normalise_title` - control characters and line separators (which would split a prompt's lines) become
  spaces; loaders call it on every title.
* :func:`prompt_titles` - every item's text in prompts: long titles cut at a word boundary, and items whose cut
  (or even full) titles coincide told apart, first by the words that differ, then by a short id. The model
  cannot rank, or name, two items that read the same.
* :func:`best_match` - the item a line of text names, by fuzzy ratio (rapidfuzz), refusing a match across a
  different number ("Part IV" is not "Part II") and lines with nothing to match (only punctuation).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

MATCH_CUTOFF = 88.0  # rapidfuzz ratio out of 100 from which a text names a title
YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_SPACES = re.compile(r"\s+")
# Unicode's control (Cc), format (Cf), line (Zl) and paragraph (Zp) separators: \r, \x0b, \x1c, \x85, U+2028, NUL,
# ESC, zero-width marks. str.splitlines() breaks a prompt at several of them.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}
# Arabic and Roman numbers: the part of a title that a fuzzy ratio barely sees and that tells sequels apart
_NUMBER = re.compile(r"\b(?:\d+|[ivxlc]+)\b")


def normalise_title(title: str) -> str:
    """NFC, every control or separator character as a space, runs of spaces as one, no outer spaces."""
    text = unicodedata.normalize("NFC", title)
    text = "".join(" " if unicodedata.category(ch) in _INVISIBLE else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


def shorten(title: str, limit: int) -> str:
    """Cut a long title at a word boundary, marking the cut with an ellipsis."""
    if len(title) <= limit:
        return title
    cut = title[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def _key(text: str) -> str:
    """What fuzzy matching compares: lower case, punctuation as spaces (rapidfuzz's default processing)."""
    return utils.default_process(text)


def _distinguished(titles: Sequence[str], limit: int) -> list[str]:
    """Titles that share their cut, each as its beginning and the words after the part they all share:
    'RIO NEON by Harmony Gelish UV… Amazon Flirt #473'."""
    # the tail starts one word early, so that it keeps its context ("SPF 15 2.5 Fl Oz", not "15 2.5 Fl Oz")
    shared = len(_common_word_prefix(titles).rstrip().rsplit(" ", 1)[0])
    tails = [t[shared:].strip(" -,;:/") for t in titles]
    out = []
    for title, tail in zip(titles, tails, strict=True):
        tail = shorten(tail, limit // 2)
        head = shorten(title[:shared].rstrip(" -,;:/"), max(limit - len(tail) - 2, limit // 2))
        out.append(f"{head} {tail}".strip())
    return out


def _common_word_prefix(titles: Sequence[str]) -> str:
    """The longest beginning, ending at a word boundary, that all ``titles`` share."""
    first = titles[0]
    n = min(len(t) for t in titles)
    end = next((i for i in range(n) if any(t[i] != first[i] for t in titles)), n)
    prefix = first[:end]
    if any(len(t) > end and t[end] != " " for t in titles) or (end < len(first) and first[end] != " "):
        prefix = prefix.rsplit(" ", 1)[0] if " " in prefix else ""
    return prefix


def prompt_titles(titles: Sequence[str], limit: int) -> list[str]:
    """Each item's text in prompts (index = item id): its title cut to about ``limit`` characters, unique.

    Items whose cut titles read the same to fuzzy matching keep the words that tell their full titles apart;
    items still alike (identical titles: the same product listed twice) get their id, "(#1234)".
    """
    texts = [shorten(t, limit) for t in titles]
    for group in _collisions(texts):
        if len({_key(titles[i]) for i in group}) == len(group):  # the full titles differ: show how
            for i, text in zip(group, _distinguished([titles[i] for i in group], limit), strict=True):
                texts[i] = text
    for group in _collisions(texts):
        for i in group:
            texts[i] = f"{texts[i]} (#{i})"
    return texts


def _collisions(texts: Sequence[str]) -> list[list[int]]:
    """Groups of two or more indices whose texts compare equal for matching."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        groups[_key(text)].append(i)
    return [group for group in groups.values() if len(group) > 1]


# MovieLens writes a leading article last ("Godfather, The (1972)", "Misérables, Les (1995)"); people and models
# write it first. These are the articles that occur so in MovieLens-1M's titles.
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|Los|Las|El|Das|Der|Die|Det|Den)(?P<year>\s*\(\d{4}\))?$"
)


def article_first(title: str) -> str:
    """'Godfather, The (1972)' -> 'The Godfather (1972)'; "Appartement, L' (1996)" -> "L'Appartement (1996)";
    other titles unchanged."""
    match = _TRAILING_ARTICLE.match(title)
    if not match:
        return title
    separator = "" if match["article"].endswith("'") else " "
    return f"{match['article']}{separator}{match['body']}{match['year'] or ''}"


@functools.cache
def title_variants(title: str) -> tuple[str, ...]:
    """The title with and without its year, each also with a trailing article moved to the front; cached
    because PALR_v1 matches against the whole catalogue."""
    forms = (title, YEAR.sub("", title))
    return tuple(dict.fromkeys([*forms, *(article_first(form) for form in forms)]))


def numbers(text: str) -> set[str]:
    """The Arabic and Roman numbers in a text ('part iv' -> {'iv'}), lower case."""
    return set(_NUMBER.findall(_key(text)))


def best_match(query: str, keys: Sequence[str], cutoff: float = MATCH_CUTOFF) -> int | None:
    """The index of the key that ``query`` names, or None.

    The closest key by fuzzy ratio at or above ``cutoff`` whose numbers are the query's ("The Godfather: Part
    IV" names no 'Godfather: Part II'); a query with no letter or digit names nothing ("---" is no title).
    """
    if not _key(query):
        return None
    matches = process.extract(query, keys, scorer=fuzz.ratio, processor=_key, score_cutoff=cutoff, limit=None)
    wanted = numbers(query)
    return next((index for key, _, index in matches if _key(key) and numbers(key) == wanted), None)


def names_title(text: str, title: str) -> bool:
    """Whether a short text (a profile keyword) names ``title``, with or without its year: 'burning lighthouse'
    names 'Burning Lighthouse (1995)'."""
    text = _key(text)
    if not text:
        return False
    for form in {title, YEAR.sub("", title)}:
        form = _key(form)
        if form and (text == form or form in text or fuzz.ratio(text, form) >= MATCH_CUTOFF):
            return True
    return False

"""Natural-language user profiles: the LLM summarises a history into preference keywords.

Results are cached as JSONL under ARTIFACT_DIR, one line per user, appended
batch by batch: an interrupted run resumes with the users not yet done. A line
cut short by the interruption is dropped on the next read. Outputs that yield
no keyword are recorded as empty (and counted), never replaced by a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from palr_utils.cache import SECONDS, read_jsonl, resumable_map
from palr_utils.constants import ATTRIBUTES, ITEM, TITLE, USER
from palr_utils.data.movielens import describe_movielens_user
from palr_utils.llm import format_prompt, generate
from palr_utils.prompts import PROFILE_ANSWER_PREFIX, PROFILE_SYSTEM, profile_prompt

KEYWORDS, RAW = "keywords", "raw_output"
MAX_KEYWORDS = 8
MAX_KEYWORD_WORDS = 4

_LEAD_IN = re.compile(r"^\s*(keywords?|preferences?|tastes?|answer|the user likes?|this user likes?)\s*[:\-]\s*", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)])\s*")
_ECHO = re.compile(r"\(\d{2,4}|\[|\]|:$|\boldest first\b")


def parse_keywords(text: str) -> list[str]:
    """Turn a model's free-form answer into a clean, de-duplicated list of lowercase keywords.

    Handles lead-ins ("Keywords: ..."), numbered or bulleted lists, quotes and
    trailing sentences; drops fragments longer than a few words (sentences, not keywords).
    """
    text = _LEAD_IN.sub("", text.strip())
    pieces = re.split(r"[,;\n]|\band\b", text)
    keywords: list[str] = []
    for piece in pieces:
        piece = _BULLET.sub("", piece)
        piece = _LEAD_IN.sub("", piece)
        piece = piece.strip().strip("\"'`*.!?()[]").strip().lower()
        # any script's letters count: a keyword in Cyrillic or CJK is a keyword, a bare number or symbol is not
        if not piece or len(piece.split()) > MAX_KEYWORD_WORDS or not any(ch.isalpha() for ch in piece):
            continue
        if _ECHO.search(piece):  # a title or a prompt line repeated back, not a preference
            continue
        if piece not in keywords:
            keywords.append(piece)
    return keywords[:MAX_KEYWORDS]


def read_profiles(path: str | Path) -> pd.DataFrame:
    """Read the profile cache (user, keywords, raw_output, seconds)."""
    frame = read_jsonl(path, USER)
    return frame.reindex(columns=[USER, KEYWORDS, RAW, SECONDS])


def generate_profiles(
    users: Sequence[int],
    prompts: Sequence[str],
    generate_batch: Callable[[list[str]], list[str]],
    cache_path: str | Path,
    batch_size: int = 16,
    identity: dict | None = None,
) -> pd.DataFrame:
    """Generate (or resume) profiles for ``users``; ``generate_batch`` maps prompts to model outputs.

    Returns the cached profiles of exactly ``users`` (in their order). The cache is reused only for what
    wrote it: ``identity`` (model and decoding; by default ``generate_batch.identity``, which
    :func:`llm_profile_writer` sets) is kept beside it, and each profile keeps a fingerprint of its prompt,
    so a changed prompt, history or seed is refused with a message instead of returning old keywords.
    """

    def work(batch: list[str]) -> list[dict]:
        return [{KEYWORDS: parse_keywords(text), RAW: text} for text in generate_batch(batch)]

    identity = identity if identity is not None else getattr(generate_batch, "identity", None)
    profiles = resumable_map(
        users, prompts, work, cache_path, USER, batch_size, desc="profiles", identity=identity, check_inputs=True
    )
    return profiles.reindex(columns=[USER, KEYWORDS, RAW, SECONDS])


def user_descriptions(users: pd.DataFrame) -> dict[int, str]:
    """Optional user information as text (MovieLens' gender, age group, occupation), keyed by user id."""
    if not {"gender", "age", "occupation"} <= set(users.columns):
        return {}
    known = users.dropna(subset=["gender", "age", "occupation"])
    return {
        int(row[USER]): describe_movielens_user(row["gender"], int(row["age"]), int(row["occupation"]))
        for _, row in known.iterrows()
    }


def build_profile_prompts(
    histories: Sequence[Sequence[int]],
    items: pd.DataFrame,
    user_ids: Sequence[int],
    user_info: dict[int, str] | None = None,
    domain: str = "movie",
    max_items: int = 20,
) -> list[str]:
    """One profile prompt per user from their training history (item ids) and the item table."""
    table = items.set_index(ITEM)
    titles, attributes = table[TITLE], table[ATTRIBUTES]
    user_info = user_info or {}
    return [
        profile_prompt(
            [titles[i] for i in history], [attributes[i] for i in history], domain, user_info.get(int(u)), max_items
        )
        for u, history in zip(user_ids, histories, strict=True)
    ]


def llm_profile_writer(tokenizer, model, max_new_tokens: int = 32) -> Callable[[list[str]], list[str]]:
    """A ``generate_batch`` for :func:`generate_profiles`: chat-formats each prompt and generates greedily.

    Its ``identity`` (the model, the system prompt, the answer prefix, the decoding) guards the profile cache.
    """
    def write(prompts: list[str]) -> list[str]:
        formatted = [format_prompt(tokenizer, p, PROFILE_SYSTEM, PROFILE_ANSWER_PREFIX) for p in prompts]
        return generate(tokenizer, model, formatted, max_new_tokens)

    write.identity = {
        "model": str(getattr(model.config, "_name_or_path", type(model).__name__)),
        "system": PROFILE_SYSTEM,
        "answer_prefix": PROFILE_ANSWER_PREFIX,
        "decoding": "greedy",
        "max_new_tokens": max_new_tokens,
    }
    return write

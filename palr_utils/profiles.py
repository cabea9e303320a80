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

from palr_utils.core.cache import SECONDS, read_jsonl, resumable_map
from palr_utils.core.constants import ATTRIBUTES, ITEM, TITLE, USER
from palr_utils.core.titles import prompt_titles
from palr_utils.data.movielens import describe_movielens_user
from palr_utils.llm.loading import format_prompt, generate
from palr_utils.llm.prompts import PROFILE_ANSWER_PREFIX, PROFILE_SYSTEM, fit_history, profile_prompt

KEYWORDS, RAW = "keywords", "raw_output"
MAX_KEYWORDS = 8
MAX_KEYWORD_WORDS = 4

_LEAD_IN = re.compile(
    r"^\s*(keywords?|preferences?|tastes?|answer|the user likes?|this user likes?)\s*[:：\-]\s*", re.I
)
# a lead-in in any language at the start of an answer ("키워드:", "ключевые слова:"): up to three words and a colon
_ANY_LEAD_IN = re.compile(r"^\s*[^\W\d_][^\W\d_'-]*(?:\s+[^\W\d_][^\W\d_'-]*){0,2}\s*[:：]\s*")
# commas, semicolons and line breaks, also their full-width forms (Chinese and Japanese answers), and "and"
_SEPARATORS = re.compile(r"[,;\n、，；。・]|\band\b")
_STRIPPED = "\"'`*.!?()[]“”‘’「」『』（）【】"
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)])\s*")
# a title's year, whole or cut off by the token limit ("the (1"), a bracket, a prompt line repeated back
_ECHO = re.compile(r"\(\s*\d|\[|\]|:$|\boldest first\b")


def parse_keywords(text: str) -> list[str]:
    """Turn a model's free-form answer into a clean, de-duplicated list of lowercase keywords.

    Handles lead-ins ("Keywords: ..."), numbered or bulleted lists, quotes and
    trailing sentences; drops fragments longer than a few words (sentences, not keywords).
    """
    text = _ANY_LEAD_IN.sub("", _LEAD_IN.sub("", text.strip()), count=1)
    pieces = _SEPARATORS.split(text)
    keywords: list[str] = []
    for piece in pieces:
        piece = _BULLET.sub("", piece)
        piece = _LEAD_IN.sub("", piece)
        piece = piece.strip().strip(_STRIPPED).strip().lower()
        # any script's letters count: a keyword in Cyrillic or CJK is a keyword, a bare number or symbol is not
        if not piece or len(piece.split()) > MAX_KEYWORD_WORDS or not any(ch.isalpha() for ch in piece):
            continue
        # a title or a prompt line repeated back, or a phrase cut inside its parentheses: not a preference
        if _ECHO.search(piece) or piece.count("(") != piece.count(")"):
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
    length_sorted: bool = True,
) -> pd.DataFrame:
    """Generate (or resume) profiles for ``users``; ``generate_batch`` maps prompts to model outputs.

    Returns the cached profiles of exactly ``users`` (in their order). The cache is reused only for what
    wrote it: ``identity`` (model and decoding; by default ``generate_batch.identity``, which
    :func:`llm_profile_writer` sets) is kept beside it, and each profile keeps a fingerprint of its prompt,
    so a changed prompt, history or seed is refused with a message instead of returning old keywords.
    ``length_sorted``: batches of prompts of similar length (less padding; benchmarks/llm_throughput.py).
    """

    def work(batch: list[str]) -> list[dict]:
        return [{KEYWORDS: parse_keywords(text), RAW: text} for text in generate_batch(batch)]

    identity = identity if identity is not None else getattr(generate_batch, "identity", None)
    profiles = resumable_map(
        users, prompts, work, cache_path, key=USER, batch_size=batch_size, desc="profiles", identity=identity,
        check_inputs=True, sort_by=len if length_sorted else None,
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
    *,
    max_title_chars: int = 60,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> list[str]:
    """One profile prompt per user from their most recent ``max_items`` training items (ids) and the item table.

    Titles are the prompts' own (cut and unique, :func:`palr_utils.core.titles.prompt_titles`), as in notebooks 04
    and 05; with ``count_tokens`` and ``max_tokens`` the oldest items are dropped until the prompt fits.
    """
    table = items.sort_values(ITEM).reset_index(drop=True)
    titles, attributes = prompt_titles(list(table[TITLE]), max_title_chars), list(table[ATTRIBUTES])
    user_info = user_info or {}
    fits = lambda prompt: not (count_tokens and max_tokens) or count_tokens(prompt) <= max_tokens  # noqa: E731
    prompts = []
    for user, history in zip(user_ids, histories, strict=True):
        def make(shown: list[int], user=user) -> str:
            return profile_prompt([titles[i] for i in shown], [attributes[i] for i in shown], domain,
                                  user_info.get(int(user)), max_items)  # fmt: skip
        prompt, _ = fit_history(make, list(history)[-max_items:], fits)
        if not fits(prompt):
            raise ValueError(f"user {user}'s profile prompt does not fit {max_tokens} tokens even with one item")
        prompts.append(prompt)
    return prompts


def preset_profile_prompts(histories: Sequence[Sequence[int]], users: Sequence[int], processed, preset) -> list[str]:
    """Notebook 02's profile prompts of ``users`` under a run's preset: the data set's user descriptions and domain,
    ``profile_history_items`` recent items, titles cut as in notebooks 04 and 05, and the oldest items dropped where a
    prompt with the chat template, the answer prefix and ``profile_max_new_tokens`` would outgrow the context."""
    from palr_utils.llm.loading import load_tokenizer, prompt_fitting

    fitting = prompt_fitting(load_tokenizer(preset.llm), preset.llm, preset.profile_max_new_tokens, PROFILE_SYSTEM,
                             PROFILE_ANSWER_PREFIX)  # fmt: skip
    return build_profile_prompts(histories, processed.items, users, user_descriptions(processed.users),
                                 processed.info["domain"], preset.profile_history_items,
                                 max_title_chars=preset.instructions.max_title_chars, **fitting)  # fmt: skip


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

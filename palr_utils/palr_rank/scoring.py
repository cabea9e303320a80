"""PALR-rank's scores: every candidate judged in one forward pass (parallel candidates)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from palr_utils.llm.prompts import rank_candidate
from palr_utils.palr_rank.item_tokens import ITEM_SLOT, ItemTokens

VERDICTS = (" Yes", " No")  # the tokens whose logits, after a candidate's line, make its score


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


def encode_candidates(
    tokenizer, formatted_prompt: str, candidate_titles: Sequence[str], history_items: Sequence[int] | None = None,
    candidate_items: Sequence[int] | None = None, slot_id: int = 0,
) -> dict[str, list[int]]:
    """One sequence: the prompt's tokens, then each candidate's line.

    ``segments`` says whose each token is (0: the prompt, j: the j-th candidate, from 1), ``positions`` the
    position each token takes (a line continues from the prompt's end, whatever came before it), ``score_at``
    where each candidate's verdict is read (its line's last token).

    With item ids (collaborative item tokens, :mod:`palr_utils.palr_rank.item_tokens`): each ``ITEM_SLOT`` of the
    prompt becomes one token (id ``slot_id``, its vector replaced later) for the next of ``history_items``, and
    each line gets one after its title, for its candidate; ``item_at`` holds the item of every slot, -1 elsewhere.
    """
    slots = history_items is not None
    if slots and (candidate_items is None or len(candidate_items) != len(candidate_titles)):
        raise ValueError("item tokens need the item id of every candidate, in the order of the titles")
    if slots and formatted_prompt.count(ITEM_SLOT) != len(history_items):
        raise ValueError(f"the prompt has {formatted_prompt.count(ITEM_SLOT)} item slots for {len(history_items)} "
                         "history items: build it with the same item_slots setting")  # fmt: skip
    prompt_ids, prompt_items = _tokens_and_slots(tokenizer, formatted_prompt, history_items, slot_id)
    input_ids, segments, positions = list(prompt_ids), [0] * len(prompt_ids), list(range(len(prompt_ids)))
    item_at, score_at = list(prompt_items), []
    for j, title in enumerate(candidate_titles, start=1):
        if slots:
            line, line_items = _tokens_and_slots(tokenizer, rank_candidate(title + ITEM_SLOT),
                                                 [candidate_items[j - 1]], slot_id)  # fmt: skip
        else:
            line = tokenizer(rank_candidate(title), add_special_tokens=False).input_ids
            line_items = [-1] * len(line)
        input_ids += line
        item_at += line_items
        segments += [j] * len(line)
        positions += range(len(prompt_ids), len(prompt_ids) + len(line))
        score_at.append(len(input_ids) - 1)
    encoded = {"input_ids": input_ids, "segments": segments, "positions": positions, "score_at": score_at}
    return encoded | ({"item_at": item_at} if slots else {})


def _tokens_and_slots(tokenizer, text: str, items: Sequence[int] | None, slot_id: int) -> tuple[list[int], list[int]]:
    """The text's tokens, each ITEM_SLOT one token of id ``slot_id``; and per token its item (-1: a word)."""
    if items is None:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return ids, [-1] * len(ids)
    ids, owners = [], []
    for k, piece in enumerate(text.split(ITEM_SLOT)):
        if k:
            ids.append(slot_id)
            owners.append(int(items[k - 1]))
        piece_ids = tokenizer(piece, add_special_tokens=False).input_ids if piece else []
        ids += piece_ids
        owners += [-1] * len(piece_ids)
    return ids, owners


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
    if "item_at" in features[0]:  # collaborative item tokens: the item of every slot, -1 elsewhere and in padding
        batch["item_at"] = torch.full((len(features), length), -1, dtype=torch.long)
        for row, f in enumerate(features):
            batch["item_at"][row, : len(f["item_at"])] = torch.tensor(f["item_at"])
    if "answer" in features[0]:
        batch["answer"] = torch.tensor([int(f["answer"]) for f in features])
    if "prior" in features[0]:  # the retriever's log-softmax per candidate (residual training); 0 in empty slots
        batch["prior"] = torch.zeros((len(features), width))
        for row, f in enumerate(features):
            batch["prior"][row, : len(f["prior"])] = torch.tensor(f["prior"])
    return batch


def pad_id(tokenizer) -> int:
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


def candidate_scores(
    model, batch: dict[str, torch.Tensor], verdict_ids: Sequence[int], item_tokens: ItemTokens | None = None
) -> torch.Tensor:
    """Every candidate's score, [batch, K]: logit(" Yes") - logit(" No") after its line; -inf in empty slots.

    With ``item_tokens``, every slot token's input vector is its item's projected retriever embedding."""
    score_at = batch["score_at"]
    dtype = model.get_input_embeddings().weight.dtype
    if item_tokens is None:
        inputs = {"input_ids": batch["input_ids"]}
    else:
        embeds = model.get_input_embeddings()(batch["input_ids"])
        slots = batch["item_at"] >= 0
        vectors = item_tokens(batch["item_at"][slots]).to(embeds.dtype)
        inputs = {"inputs_embeds": embeds.masked_scatter(slots[..., None], vectors)}  # row-major, as slots lists them
    # Only the verdict positions need the vocabulary projection: logits_to_keep takes their union.
    keep = torch.unique(score_at[score_at >= 0])
    outputs = model(
        **inputs, position_ids=batch["position_ids"], use_cache=False, logits_to_keep=keep,
        attention_mask=candidate_attention_mask(batch["segments"], dtype),
    )  # fmt: skip
    yes, no = verdict_ids
    verdict = (outputs.logits[..., yes] - outputs.logits[..., no]).float()  # [batch, kept positions]
    scores = verdict.gather(1, torch.searchsorted(keep, score_at.clamp(min=0)))
    return scores.masked_fill(score_at < 0, float("-inf"))


@torch.no_grad()
def rank_scores(
    tokenizer, model, formatted_prompts: Sequence[str], candidate_titles: Sequence[Sequence[str]],
    item_tokens: ItemTokens | None = None, history_items: Sequence[Sequence[int]] | None = None,
    candidate_items: Sequence[Sequence[int]] | None = None,
) -> list[np.ndarray]:
    """Inference: each prompt's candidates scored in one forward pass per batch, in the order given (with
    ``item_tokens``, the prompts' slots and every candidate take their items' tokens)."""
    verdict_ids = verdict_token_ids(tokenizer, formatted_prompts[0])
    if item_tokens is not None and (history_items is None or candidate_items is None):
        raise ValueError("item tokens need the items of every history and every candidate list")
    none = [None] * len(formatted_prompts)
    histories, listed = (history_items, candidate_items) if item_tokens is not None else (none, none)
    features = [encode_candidates(tokenizer, p, t, h, c, pad_id(tokenizer))
                for p, t, h, c in zip(formatted_prompts, candidate_titles, histories, listed, strict=True)]
    batch = {k: v.to(model.device) for k, v in collate_candidates(features, pad_id(tokenizer)).items()}
    scores = candidate_scores(model, batch, verdict_ids, item_tokens).cpu().numpy()
    return [scores[row, : len(titles)] for row, titles in enumerate(candidate_titles)]

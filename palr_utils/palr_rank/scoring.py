"""PALR-rank's scores: every candidate judged in one forward pass (parallel candidates)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from palr_utils.llm.prompts import rank_candidate

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


@torch.no_grad()
def rank_scores(
    tokenizer, model, formatted_prompts: Sequence[str], candidate_titles: Sequence[Sequence[str]]
) -> list[np.ndarray]:
    """Inference: each prompt's candidates scored in one forward pass per batch, in the order given."""
    verdict_ids = verdict_token_ids(tokenizer, formatted_prompts[0])
    features = [encode_candidates(tokenizer, p, t) for p, t in zip(formatted_prompts, candidate_titles, strict=True)]
    batch = {k: v.to(model.device) for k, v in collate_candidates(features, pad_id(tokenizer)).items()}
    scores = candidate_scores(model, batch, verdict_ids).cpu().numpy()
    return [scores[row, : len(titles)] for row, titles in enumerate(candidate_titles)]

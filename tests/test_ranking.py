"""PALR-rank: ranking examples from training prefixes, the listwise loss, fusion and its weight, intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from palr_utils.constants import ITEM, SPLIT, TITLE, USER
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import write_synthetic
from palr_utils.evaluation import EvalCase, choose_fusion_weight, delta_intervals, fused_records, retriever_records
from palr_utils.profiles import SyntheticSpec
from palr_utils.prompts import CANDIDATE_LABELS
from palr_utils.ranking import answer_positions, build_rank_examples, fusion_scores, listwise_letter_loss
from palr_utils.retrieval import SequenceData
from palr_utils.retrieval.candidates import RANK, training_prefix


@pytest.fixture(scope="module")
def synthetic():
    import tempfile
    from pathlib import Path

    folder = write_synthetic(Path(tempfile.mkdtemp()) / "d", SyntheticSpec(n_users=60, n_items=80), seed=3)
    processed = preprocess(load_movielens(folder))
    return processed, SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)


def _prefix_candidates(data: SequenceData, users, n_targets: int, k: int, hit_every: int = 2) -> pd.DataFrame:
    """Candidates after each training prefix; every ``hit_every``-th user's next item is among them."""
    rows = []
    for user in users:
        prefix, following = training_prefix(data.train[user], n_targets)
        pool = [i for i in range(data.n_items) if i not in set(data.train[user]) | {data.valid[user], data.test[user]}]
        shortlist = pool[:k]
        if user % hit_every == 0:
            shortlist = [int(following[0]), *[i for i in shortlist if i != following[0]][: k - 1]]
        rows += [{USER: user, SPLIT: "train", RANK: r, ITEM: i, "score": float(k - r)} for r, i in enumerate(shortlist)]
    return pd.DataFrame(rows)


def test_rank_examples_answer_with_the_letter_of_the_next_item_and_leak_nothing(synthetic):
    processed, data = synthetic
    users = list(range(data.n_users))
    candidates = _prefix_candidates(data, users, n_targets=3, k=8)
    titles = processed.items.set_index(ITEM)[TITLE]
    profiles = {u: [titles[int(training_prefix(data.train[u], 3)[1][0])].lower(), "comedy"] for u in users}
    examples = build_rank_examples(data, processed.items, users, candidates, 8, 5, 3, seed=1, profiles=profiles)
    assert sorted(examples[USER]) == [u for u in users if u % 2 == 0]  # only users whose answer is listed
    for _, example in examples.iterrows():
        user, (answer,) = example[USER], example["label"]
        assert answer == int(training_prefix(data.train[user], 3)[1][0])
        assert example["completion"] == CANDIDATE_LABELS[example["candidates"].index(answer)]
        assert len(example["candidates"]) == 8
        assert not {data.valid[user], data.test[user]} & (set(example["candidates"]) | set(example["history"]))
        assert f"{CANDIDATE_LABELS[7]}. " in example["prompt"] and "Answer with its letter." in example["prompt"]
        assert "The user's preferences: comedy." in example["prompt"]  # the keyword naming the answer is gone
    again = build_rank_examples(data, processed.items, users[::-1], candidates, 8, 5, 3, seed=1, profiles=profiles)
    pd.testing.assert_frame_equal(examples, again.sort_values(USER).reset_index(drop=True))


def test_listwise_loss_is_a_softmax_over_the_letters_only():
    letter_ids = torch.tensor([10, 11, 12, 13])
    uniform = torch.zeros(2, 50)
    uniform[:, 30] = 100.0  # a token outside the letters has no say
    answers = torch.tensor([11, 13])
    assert listwise_letter_loss(uniform, answers, letter_ids).item() == pytest.approx(math.log(4))
    confident = torch.zeros(2, 50)
    confident[0, 11], confident[1, 13] = 20.0, 20.0
    assert listwise_letter_loss(confident, answers, letter_ids).item() < 1e-6
    with pytest.raises(ValueError, match="not one of the candidate letters"):
        listwise_letter_loss(uniform, torch.tensor([11, 30]), letter_ids)


def test_answer_positions_find_the_first_unmasked_label():
    labels = torch.tensor([[-100, -100, 7, 2], [-100, 5, 2, -100]])
    assert answer_positions(labels).tolist() == [2, 1]
    with pytest.raises(ValueError, match="no answer token"):
        answer_positions(torch.full((1, 3), -100))


def _cases():
    # user 0: the retriever likes item 5 (wrong), the LLM likes item 4 (right); user 1 the other way round
    return [
        EvalCase(0, target=4, history=[0], retrieved=[5, 4, 3], listed=[3, 4, 5], seen={0}, keywords=[],
                 listed_scores=[1.0, 2.0, 3.0]),
        EvalCase(1, target=7, history=[1], retrieved=[7, 8, 9], listed=[9, 7, 8], seen={1}, keywords=[],
                 listed_scores=[1.0, 3.0, 2.5]),
    ]  # fmt: skip


def _llm_records():
    return pd.DataFrame({USER: [0, 1], "log_probs": [np.log([0.1, 0.8, 0.1]), np.log([0.6, 0.2, 0.2])]})


def test_fusion_weight_zero_is_the_retriever_and_a_large_weight_the_llm():
    cases = _cases()
    assert fused_records(cases, _llm_records(), 0.0)["final"].tolist() == retriever_records(cases)["final"].tolist()
    # ties in the LLM's scores (items 3 and 5 for user 0): the retriever decides
    assert fused_records(cases, _llm_records(), 100.0)["final"].tolist() == [[4, 5, 3], [9, 7, 8]]
    np.testing.assert_allclose(np.exp(fusion_scores(np.array([1.0, 1.0]), np.zeros(2), 0.0)).sum(), 1.0)


def test_the_fusion_weight_is_the_best_on_the_cases_given_with_ties_to_the_smaller():
    weight, curve = choose_fusion_weight(_cases(), _llm_records(), [0.0, 0.5, 1.0, 100.0])
    assert curve["weight"].tolist() == [0.0, 0.5, 1.0, 100.0]
    best = curve["ndcg@10"].max()
    assert weight == curve.loc[curve["ndcg@10"] == best, "weight"].min()


def test_intervals_for_every_method_but_the_baseline_on_shared_users():
    records = {
        "sasrec": pd.DataFrame({USER: range(200), "rank": [5] * 200}),
        "better": pd.DataFrame({USER: range(200), "rank": [0] * 200}),
        "subset": pd.DataFrame({USER: range(0, 200, 2), "rank": [5] * 100}),
    }
    out = delta_intervals(records, n_resamples=200)
    assert set(out) == {f"{m}_ndcg@10_delta_ci_{s}" for m in ("better", "subset") for s in ("low", "high")}
    assert out["better_ndcg@10_delta_ci_low"] > 0.5 and out["subset_ndcg@10_delta_ci_high"] == 0.0

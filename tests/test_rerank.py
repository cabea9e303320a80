from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from palr_utils.core.io import StaleArtifactError
from palr_utils.evaluation.cases import EvalCase, build_cases, rank_in_list
from palr_utils.evaluation.methods import rerank_identity, retriever_records, run_method, shuffled_records, summarize
from palr_utils.evaluation.parsing import answer_lines, backfill, match_answer
from palr_utils.evaluation.rerankers import (
    Reranker,
    calibrated_records,
    calibrated_scores,
    fast_records_via_generation,
    label_period_id,
    label_token_ids,
    letter_prior,
    letter_scores,
)
from palr_utils.presets import get_preset
from palr_utils.retrieval import SequenceData

TITLES = ["Toy Story (1995)", "Heat (1995)", "Casino (1995)", "Alien (1979)", "Aliens (1986)", "Jaws (1975)"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("C. Casino (1995)\nA. Toy Story (1995)", [("C", "Casino (1995)"), ("A", "Toy Story (1995)")]),
        ('1. "Heat (1995)"\n2) Jaws', [(None, "Heat (1995)"), (None, "Jaws")]),
        ("- Alien (1979)\n\n* Aliens", [(None, "Alien (1979)"), (None, "Aliens")]),
        ("", []),
    ],
)
def test_answer_lines_strip_letters_numbers_bullets_and_quotes(text, expected):
    assert answer_lines(text) == expected


def test_matching_by_letter_then_fuzzy_title_with_hallucinations_and_duplicates_counted():
    labels = {"A": 2, "B": 0, "C": 4}
    text = "A. Casino (1995)\nToy Story\nC. Aliens (1986)\nB. Toy Story (1995)\nThe Godfather (1972)\nJaws"
    parsed = match_answer(text, allowed=[2, 0, 4], titles=TITLES, labels=labels)
    assert parsed.items == [2, 0, 4]
    assert parsed.n_lines == 6 and parsed.n_duplicates == 1
    assert parsed.n_hallucinated == 2  # The Godfather is unknown; Jaws (5) is known but not a candidate


def test_lines_naming_seen_items_are_counted_apart_from_hallucinations():
    text = "Toy Story (1995)\nHeat (1995)\nThe Godfather (1972)\nCasino"
    parsed = match_answer(text, allowed=[1, 2], titles=TITLES, seen={0})
    assert parsed.items == [1, 2] and parsed.n_seen == 1 and parsed.n_hallucinated == 1
    # without the history, the seen title is just a line that names no allowed item
    assert match_answer(text, allowed=[1, 2], titles=TITLES).n_hallucinated == 2


def test_near_miss_titles_match_the_catalogue():
    parsed = match_answer("toy story\nHeat 1995\nCasino, (1995)\nToy Stroy (1995)\nThe",
                          allowed=range(len(TITLES)), titles=TITLES)  # fmt: skip
    assert parsed.items == [0, 1, 2] and parsed.n_duplicates == 1 and parsed.n_hallucinated == 1


def test_empty_output_is_all_backfill():
    parsed = match_answer("", allowed=[0, 1], titles=TITLES)
    assert parsed.items == [] and parsed.n_lines == 0
    assert backfill(parsed.items, [5, 4, 3], k=2) == [5, 4]


def test_backfill_keeps_the_models_order_and_fills_from_the_retriever():
    assert backfill([4, 2], [1, 2, 3, 4, 5], k=4) == [4, 2, 1, 3]
    assert rank_in_list(3, [4, 2, 1, 3]) == 3 and rank_in_list(9, [4, 2, 1, 3]) >= 10


class _Tokenizer:
    """Characters are tokens; enough to check which logits the fast mode reads."""

    pad_token_id = 0

    def __call__(self, texts, return_tensors=None, padding=False, add_special_tokens=False):
        if isinstance(texts, str):
            return SimpleNamespace(input_ids=[ord(c) for c in texts])
        width = max(map(len, texts))
        ids = torch.tensor([[0] * (width - len(t)) + [ord(c) for c in t] for t in texts])
        return _Batch(input_ids=ids, attention_mask=(ids > 0).long())

    def decode(self, ids):
        return "".join(map(chr, ids))


class _Batch(dict):
    def to(self, device):
        return self


class _Model:
    device = "cpu"

    def __init__(self, preferred: dict[str, float]):
        self.preferred = preferred

    def __call__(self, input_ids, attention_mask, logits_to_keep=0):
        logits = torch.zeros(*input_ids.shape, 256)
        for letter, value in self.preferred.items():
            logits[:, -1, ord(letter)] = value
        return SimpleNamespace(logits=logits[:, -logits_to_keep:])  # 0 keeps all, as in transformers


def test_fast_mode_ranks_candidates_by_their_letters_next_token_logits():
    tokenizer = _Tokenizer()
    assert label_token_ids(tokenizer, "prompt:", 3) == [ord("A"), ord("B"), ord("C")]
    scores = letter_scores(tokenizer, _Model({"A": 0.1, "B": 2.0, "C": 1.0}), ["p1:", "p22:"], [3, 2])
    np.testing.assert_allclose(scores[0], [0.1, 2.0, 1.0])
    np.testing.assert_allclose(scores[1], [0.1, 2.0])


def test_generation_is_held_to_a_letter_and_its_period():
    assert label_period_id(_Tokenizer(), "prompt:", 3) == ord(".")

    class _WordTokenizer(_Tokenizer):  # the token after a letter is not a bare period (say, ". " merged)
        def decode(self, ids):
            return ". "

    with pytest.raises(ValueError, match="not one token"):
        label_period_id(_WordTokenizer(), "prompt:", 3)


def test_fast_mode_final_list_and_metrics_on_a_hand_made_case(monkeypatch):
    import palr_utils.evaluation.rerankers as rerank

    monkeypatch.setattr(rerank, "format_prompt", lambda tokenizer, prompt: prompt + "\nAnswer:")
    case = EvalCase(user=0, target=5, history=[0], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0}, keywords=[])
    reranker = Reranker(_Tokenizer(), _Model({"A": 0.5, "B": 3.0, "C": -1.0}), TITLES)
    (record,) = reranker.score_v2_fast([case])
    assert record["final"] == [5, 4, 3]  # B (item 5) first, then A (item 4), then C (item 3)
    assert record["rank"] == 0
    metrics = summarize("palr_v2_fast", pd.DataFrame([{**record, "seconds": 0.5}]))
    assert metrics["palr_v2_fast_test_ndcg@10"] == 1.0 and metrics["palr_v2_fast_seconds_per_user"] == 0.5


def test_cases_take_the_retrievers_best_candidates_and_shuffle_them_per_user():
    data = SequenceData(2, 8, [np.array([0, 1]), np.array([2])], valid=np.array([2, 3]), test=np.array([7, 6]))
    candidates = pd.DataFrame({"user": [0] * 4 + [1] * 4, "split": "test", "item": [5, 7, 4, 3, 6, 5, 4, 3],
                               "rank": [0, 1, 2, 3] * 2, "score": [4.0, 3.0, 2.0, 1.0] * 2})  # fmt: skip
    cases = build_cases(data, candidates, [0, 1], {}, n_history=5, seed=1, n_candidates=3)
    assert cases[0].retrieved == [5, 7, 4] and sorted(cases[0].listed) == [4, 5, 7]
    # the retriever's scores travel with the shuffled list, for fusion
    assert cases[0].listed_scores == [{5: 4.0, 7: 3.0, 4: 2.0}[i] for i in cases[0].listed]
    assert cases[0].history == [0, 1, 2] and cases[0].target == 7
    again = build_cases(data, candidates, [1, 0], {}, n_history=5, seed=1, n_candidates=3)
    assert again[1].listed == cases[0].listed  # the same order whoever else is evaluated
    with pytest.raises(ValueError, match="no test candidates"):
        build_cases(data, candidates[candidates["user"] == 0], [0, 1], {}, n_history=5, seed=1)


def test_validation_cases_end_one_item_earlier_and_aim_at_the_validation_item():
    data = SequenceData(1, 8, [np.array([0, 1])], valid=np.array([2]), test=np.array([7]))
    candidates = pd.DataFrame({"user": 0, "split": ["valid"] * 2 + ["test"] * 2, "item": [3, 4, 5, 6],
                               "rank": [0, 1, 0, 1], "score": [2.0, 1.0, 2.0, 1.0]})  # fmt: skip
    (case,) = build_cases(data, candidates, [0], {}, n_history=5, seed=1, split="valid")
    assert case.history == [0, 1] and case.target == 2 and case.retrieved == [3, 4]
    with pytest.raises(ValueError, match="split must be"):
        build_cases(data, candidates, [0], {}, n_history=5, seed=1, split="train")


def test_letter_prior_is_the_mean_log_probability_of_each_position():
    # two prompts: the model likes A in both; the second list is shorter, so C counts once
    rows = [np.log(np.array([0.5, 0.25, 0.25])), np.log(np.array([0.8, 0.2]))]
    prior = letter_prior(rows)
    np.testing.assert_allclose(prior, [np.log([0.5, 0.8]).mean(), np.log([0.25, 0.2]).mean(), np.log(0.25)])
    with pytest.raises(ValueError, match="at least one"):
        letter_prior([])


def test_calibration_removes_a_position_preference_shared_by_every_prompt():
    # A always gets +3 whatever it labels; this prompt's own evidence says C > B > A
    prior = letter_prior([np.array([3.0, 0.0, 0.0])] * 5)
    calibrated = calibrated_scores(np.array([3.0, 0.5, 1.0]), prior)
    assert np.argsort(-calibrated).tolist() == [2, 1, 0]
    assert np.argmax([3.0, 0.5, 1.0]) == 0  # uncalibrated, the bias wins
    with pytest.raises(ValueError, match="prior covers only"):
        calibrated_scores(np.zeros(4), prior)


def test_calibrated_fast_mode_uses_the_prior_of_validation_prompts(monkeypatch):
    import palr_utils.evaluation.rerankers as rerank

    monkeypatch.setattr(rerank, "format_prompt", lambda tokenizer, prompt: prompt + "\nAnswer:")
    case = EvalCase(user=0, target=3, history=[0], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0}, keywords=[])
    reranker = Reranker(_Tokenizer(), _Model({"A": 3.0, "B": 0.0, "C": 0.5}), TITLES)
    prior = reranker.letter_prior_v2([case] * 3, batch_size=2)  # the same prompt: the prior is its own scores
    np.testing.assert_allclose(calibrated_scores(np.array([3.0, 0.0, 0.5]), prior), 0.0, atol=1e-9)
    (plain,) = reranker.score_v2_fast([case])
    assert plain["final"] == [4, 3, 5]  # A, C, B by raw logits
    # a prior in which A is favoured even more and B much less than in this prompt reverses the order
    strong_a = letter_prior([np.array([6.0, -3.0, 0.5])] * 2)
    (calibrated,) = reranker.score_v2_fast([case], strong_a)
    assert calibrated["final"] == [5, 3, 4]  # B, C, A


def test_calibrated_records_read_from_the_fast_records_rank_as_a_second_calibrated_pass(monkeypatch):
    import palr_utils.evaluation.rerankers as rerank

    monkeypatch.setattr(rerank, "format_prompt", lambda tokenizer, prompt: prompt + "\nAnswer:")
    cases = [EvalCase(user=u, target=3, history=[0], retrieved=[3, 4, 5], listed=listed, seen={0}, keywords=[])
             for u, listed in ((7, [4, 5, 3]), (2, [3, 5, 4]))]  # fmt: skip
    reranker = Reranker(_Tokenizer(), _Model({"A": 3.0, "B": 0.0, "C": 0.5}), TITLES)
    prior = letter_prior([np.array([6.0, -3.0, 0.5])] * 2)
    fast = pd.DataFrame([{"user": c.user, **r, "seconds": 0.25}
                         for c, r in zip(cases, reranker.score_v2_fast(cases), strict=True)])  # fmt: skip
    derived = calibrated_records(cases, fast.iloc[::-1], prior)  # records in any order: matched by user
    second_pass = reranker.score_v2_fast(cases, prior)
    assert derived["user"].tolist() == [7, 2]
    assert derived["final"].tolist() == [r["final"] for r in second_pass] == [[5, 3, 4], [5, 4, 3]]
    assert derived["rank"].tolist() == [r["rank"] for r in second_pass]
    np.testing.assert_allclose(np.stack(derived["log_probs"]), [r["log_probs"] for r in second_pass], atol=1e-5)
    assert derived["seconds"].tolist() == [0.25, 0.25]  # the pass that scored them; calibration costs nothing


def test_fast_records_read_from_generation_and_a_pass_only_for_the_others():
    cases = [EvalCase(user=u, target=3, history=[0], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0}, keywords=[])
             for u in (9, 4, 6, 1)]  # fmt: skip
    # user 4: generated for, letters' logits kept; user 1: an older generation record without them (NaN)
    generation = pd.DataFrame({"user": [1, 4], "letter_logits": [float("nan"), [0.0, 2.0, 1.0]]})
    asked = []

    def score_others(others):
        asked.append([c.user for c in others])
        return pd.DataFrame([{"user": c.user, "final": [3, 4, 5], "rank": 1, "log_probs": [0.0] * 3, "seconds": 0.5}
                             for c in reversed(others)])  # fmt: skip

    records = fast_records_via_generation(cases, generation, score_others)
    assert asked == [[9, 6, 1]]  # every user not read, once, in the cases' order
    assert records["user"].tolist() == [9, 4, 6, 1]  # the cases' order, whatever order each part came in
    read = records.set_index("user").loc[4]
    assert read["final"] == [5, 3, 4] and read["rank"] == 1  # B, C, A by the kept logits; the target second
    assert np.isnan(read["seconds"])  # generation paid for that pass
    assert records.set_index("user").loc[[9, 6, 1], "seconds"].tolist() == [0.5] * 3
    every_read = pd.DataFrame({"user": [c.user for c in cases], "letter_logits": [[0.0, 2.0, 1.0]] * 4})
    assert fast_records_via_generation(cases, every_read, pytest.fail)["user"].tolist() == [9, 4, 6, 1]
    none_read = fast_records_via_generation(cases, generation.drop(columns="letter_logits"), score_others)
    assert none_read["user"].tolist() == [9, 4, 6, 1] and none_read["rank"].dtype.kind == "i"  # not objects
    with pytest.raises(ValueError, match="no record for 1 of the 3 users"):
        fast_records_via_generation(cases, generation, lambda others: score_others(others).iloc[1:])


def test_length_sorted_batches_group_similar_cases_and_return_records_in_the_users_order(tmp_path):
    reranker = Reranker(None, None, ["ab", "abcdef", "a", "abcd", "abc", "abcde"])
    cases = [EvalCase(user=u, target=0, history=[h], retrieved=[0], listed=[0], seen=set(), keywords=[])
             for u, h in zip([10, 11, 12, 13], [2, 1, 4, 3], strict=True)]  # fmt: skip
    assert [reranker.text_length(c) for c in cases] == [3, 8, 5, 6]
    batches = []

    def method(batch):
        batches.append([c.user for c in batch])
        return [{"final": [0], "rank": 1} for _ in batch]

    records = run_method(method, cases, tmp_path / "m.jsonl", 2, sort_by=reranker.text_length)
    assert batches == [[11, 13], [12, 10]]  # longest first, neighbours in length together
    assert records["user"].tolist() == [10, 11, 12, 13]
    batches.clear()
    run_method(method, cases, tmp_path / "plain.jsonl", 2)
    assert batches == [[10, 11], [12, 13]]  # without sort_by: the users' order, as before


def test_rerank_cache_refuses_records_of_another_adapter(tmp_path):
    case = EvalCase(user=0, target=5, history=[0], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0}, keywords=[])
    method = lambda cases: [{"final": c.retrieved, "rank": 2} for c in cases]  # noqa: E731
    first = run_method(method, [case], tmp_path / "palr_v2.jsonl", 4, {"adapter": "abc"})
    again = run_method(method, [case], tmp_path / "palr_v2.jsonl", 4, {"adapter": "abc"})
    assert first["rank"].tolist() == again["rank"].tolist() == [2]
    with pytest.raises(StaleArtifactError, match="adapter"):
        run_method(method, [case], tmp_path / "palr_v2.jsonl", 4, {"adapter": "new"})


def test_rerank_identity_follows_the_adapter_weights_the_candidates_and_the_settings(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights one")
    tiny, cpu = get_preset("tiny"), get_preset("cpu")
    cases = [EvalCase(user=0, target=5, history=[0], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0}, keywords=[])]
    first = rerank_identity(tmp_path, tiny, 1, cases)
    assert first == rerank_identity(tmp_path, tiny, 1, cases)
    assert first["n_candidates"] == tiny.instructions.n_candidates
    assert rerank_identity(tmp_path, cpu, 1, cases) != first  # other candidate and history lengths
    assert rerank_identity(tmp_path, tiny, 2, cases) != first
    # a new retriever's candidates change every answer's back-fill: the cache must not be reused
    other_candidates = [EvalCase(user=0, target=5, history=[0], retrieved=[3, 5, 4], listed=[4, 5, 3], seen={0},
                                 keywords=[])]  # fmt: skip
    assert rerank_identity(tmp_path, tiny, 1, other_candidates)["cases"] != first["cases"]
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights two")
    assert rerank_identity(tmp_path, tiny, 1, cases)["adapter"] != first["adapter"]


def test_retriever_and_chance_orders_as_methods():
    cases = [
        EvalCase(user=0, target=5, history=[0], retrieved=[5, 4, 3], listed=[3, 4, 5], seen={0}, keywords=[]),
        EvalCase(user=1, target=9, history=[1], retrieved=[6, 7, 8], listed=[8, 6, 7], seen={1}, keywords=[]),
    ]
    assert retriever_records(cases)["rank"].tolist() == [0, 1_000_000]  # user 1's target is not a candidate
    shuffled = shuffled_records(cases)
    assert shuffled["final"].tolist() == [[3, 4, 5], [8, 6, 7]] and shuffled["rank"].tolist() == [2, 1_000_000]
    assert summarize("shuffled", shuffled)["shuffled_test_hr@10"] == 0.5

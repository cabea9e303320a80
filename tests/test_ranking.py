"""PALR-rank: ranking examples from training prefixes, parallel candidates (mask, equivalence with one candidate
at a time), the listwise loss, fusion and its weight, intervals; collaborative item tokens (slots, the item
table, the projector, their effect on the scores)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from palr_utils.core.constants import ITEM, SPLIT, TITLE, USER, VALID
from palr_utils.core.io import StaleArtifactError
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.evaluation.cases import EvalCase, rank_changes
from palr_utils.evaluation.fusion import choose_fusion_weight, delta_intervals, fused_records, fusion_scores
from palr_utils.evaluation.methods import ndcg_by_group, retriever_records
from palr_utils.llm.loading import format_prompt
from palr_utils.llm.prompts import rank_candidate
from palr_utils.palr_rank.examples import build_rank_examples
from palr_utils.palr_rank.item_tokens import (
    EMBEDDING_KEY,
    ITEM_SLOT,
    ITEM_TOKENS_FILE,
    ItemTable,
    ItemTokens,
    load_item_tokens,
)
from palr_utils.palr_rank.scoring import (
    candidate_attention_mask,
    candidate_scores,
    collate_candidates,
    encode_candidates,
    rank_scores,
    verdict_token_ids,
)
from palr_utils.palr_rank.trainer import listwise_loss, rank_trainer_kwargs, to_rank_dataset
from palr_utils.retrieval import SequenceData
from palr_utils.retrieval.candidates import RANK


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from palr_utils.llm.loading import smollm2_folder

    return AutoTokenizer.from_pretrained(smollm2_folder())


@pytest.fixture(scope="module")
def tiny_llm(tokenizer):
    """A randomly initialised two-layer LLaMA with SmolLM2's vocabulary, in float32 (exact comparisons)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    return tokenizer, LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def synthetic():
    import tempfile
    from pathlib import Path

    folder = write_synthetic(Path(tempfile.mkdtemp()) / "d", SyntheticConfig(n_users=60, n_items=80), seed=3)
    processed = preprocess(load_movielens(folder))
    return processed, SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)


SIZES = {"n_candidates": 8, "n_history": 5, "seed": 1}  # of the ranking examples in these tests


def _back_candidates(back: SequenceData, users, k: int, hit_every: int = 2) -> pd.DataFrame:
    """Validation candidates of data one step back; every ``hit_every``-th user's answer is among them."""
    rows = []
    for user in users:
        answer = int(back.valid[user])
        pool = [i for i in range(back.n_items) if i not in set(back.train[user]) | {answer}]
        shortlist = pool[:k]
        if user % hit_every == 0:
            shortlist = [answer, *shortlist[: k - 1]]
        rows += [{USER: user, SPLIT: VALID, RANK: r, ITEM: i, "score": float(k - r)} for r, i in enumerate(shortlist)]
    return pd.DataFrame(rows)


def test_one_step_back_holds_out_each_last_training_item():
    data = SequenceData(2, 9, [np.array([1, 2, 3]), np.array([4, 5])], np.array([6, 7]), np.array([8, 0]))
    back = data.one_step_back()
    assert [t.tolist() for t in back.train] == [[1, 2], [4]]
    assert back.valid.tolist() == [3, 5] and back.test.tolist() == [6, 7]
    with pytest.raises(ValueError, match="fewer than 2 training items"):
        back.one_step_back()


def test_rank_examples_answer_with_the_last_training_item_and_leak_nothing(synthetic):
    processed, data = synthetic
    back = data.one_step_back()
    users = list(range(data.n_users))
    candidates = _back_candidates(back, users, k=8)
    titles = processed.items.set_index(ITEM)[TITLE]
    profiles = {u: [titles[int(data.train[u][-1])].lower(), "comedy"] for u in users}
    examples = build_rank_examples(back, processed.items, users, candidates, **SIZES, profiles=profiles)
    assert sorted(examples[USER]) == [u for u in users if u % 2 == 0]  # only users whose answer is listed
    for _, example in examples.iterrows():
        user, (answer,) = example[USER], example["label"]
        assert answer == int(data.train[user][-1])
        assert example["history"] == data.train[user][:-1][-5:].tolist()
        assert example["candidates"][example["answer"]] == answer
        assert example["candidate_titles"] == [titles[i] for i in example["candidates"]]
        assert len(example["candidates"]) == 8
        # held-out items are never the answer nor in the history; like the items of any full softmax they may be
        # among the negatives (the list holds what the retriever proposed at that time)
        assert not {data.valid[user], data.test[user]} & ({answer} | set(example["history"]))
        assert titles[answer] not in example["prompt"]  # candidates are not in the prompt, they follow it
        assert "The user's preferences: comedy." in example["prompt"]  # the keyword naming the answer is gone
    again = build_rank_examples(back, processed.items, users[::-1], candidates, **SIZES, profiles=profiles)
    pd.testing.assert_frame_equal(examples, again.sort_values(USER).reset_index(drop=True))


def test_random_negatives_replace_the_weakest_candidates_and_are_never_the_users_items(synthetic):
    processed, data = synthetic
    back = data.one_step_back()
    users = list(range(data.n_users))
    candidates = _back_candidates(back, users, k=8)
    hard = build_rank_examples(back, processed.items, users, candidates, **SIZES)
    mixed = build_rank_examples(back, processed.items, users, candidates, **SIZES, random_negatives=3, full_data=data)
    assert mixed[USER].tolist() == hard[USER].tolist()
    for (_, h), (_, m) in zip(hard.iterrows(), mixed.iterrows(), strict=True):
        user, answer = m[USER], m["label"][0]
        assert len(m["candidates"]) == 8 == len(set(m["candidates"])) and m["candidates"][m["answer"]] == answer
        ranked = candidates[candidates[USER] == user].sort_values(RANK)[ITEM].tolist()
        kept = [i for i in ranked if i != answer][:4]  # 8 places: the answer, the 4 best wrong ones, 3 random
        drawn = set(m["candidates"]) - set(kept) - {answer}
        assert set(kept) < set(m["candidates"]) and len(drawn) == 3 and not drawn & set(ranked)
        own = {*data.train[user].tolist(), data.valid[user], data.test[user]}
        assert not own & drawn, "a random negative is one of the user's own items (validation and test included)"
        assert m["prior"] == [] and h["prior"]  # the retriever never scored the random items
    again = build_rank_examples(back, processed.items, users, candidates, **SIZES, random_negatives=3, full_data=data)
    pd.testing.assert_frame_equal(mixed, again)
    listed = _back_candidates(back, users, k=5)  # 4 wrong candidates listed, 6 to draw: none of the 4 kept
    short = build_rank_examples(back, processed.items, users, listed, **SIZES, random_negatives=6, full_data=data)
    assert all(len(c) == 7 and not set(c) & set(listed[listed[USER] == u][ITEM]) - {a[0]}
               for u, c, a in zip(short[USER], short["candidates"], short["label"], strict=True))  # fmt: skip
    with pytest.raises(ValueError, match="full_data"):
        build_rank_examples(back, processed.items, users, candidates, **SIZES, random_negatives=3)
    with pytest.raises(ValueError, match="never scored"):
        to_rank_dataset(mixed, tokenizer=None, residual=True)  # refused before any encoding


def test_each_rank_example_keeps_the_retrievers_log_softmax_over_its_candidates_in_their_listed_order(synthetic):
    processed, data = synthetic
    back = data.one_step_back()
    users = list(range(0, data.n_users, 2))
    candidates = _back_candidates(back, users, k=8)
    examples = build_rank_examples(back, processed.items, users, candidates, **SIZES)
    for _, example in examples.iterrows():
        rows = candidates[candidates[USER] == example[USER]].set_index(ITEM)["score"]
        expected = np.asarray(rows.loc[example["candidates"]]) - np.log(np.exp(rows).sum())
        np.testing.assert_allclose(example["prior"], expected, atol=1e-5)
        assert np.exp(example["prior"]).sum() == pytest.approx(1.0, abs=1e-4)


def test_residual_training_adds_the_prior_to_the_scores_and_empty_slots_stay_empty(tokenizer):
    prompt = "History: Alpha\n"
    features = [encode_candidates(tokenizer, prompt, ["B", "C", "D"]), encode_candidates(tokenizer, prompt, ["E"])]
    for feature, answer, prior in zip(features, (2, 0), ([-3.0, -2.0, -0.5], [0.0]), strict=True):
        feature["answer"], feature["prior"] = answer, prior
    batch = collate_candidates(features, pad_token_id=0)
    assert batch["prior"].tolist() == [[-3.0, -2.0, -0.5], [0.0, 0.0, 0.0]]
    scores = torch.tensor([[0.5, 0.0, 1.0], [5.0, float("-inf"), float("-inf")]])
    residual = listwise_loss(scores, batch["answer"], batch["prior"])
    assert residual.item() == pytest.approx(torch.nn.functional.cross_entropy(scores + batch["prior"],
                                                                              batch["answer"]).item())  # fmt: skip
    assert residual.item() < listwise_loss(scores, batch["answer"]).item()  # the prior already favours the answer


def test_long_prompts_lose_their_oldest_history_items_until_prompt_and_candidates_fit(synthetic):
    processed, data = synthetic
    back = data.one_step_back()
    users = list(range(0, data.n_users, 2))
    candidates = _back_candidates(back, users, k=8)
    words = lambda text: len(text.split())  # noqa: E731
    full = build_rank_examples(back, processed.items, users, candidates, **SIZES)
    cut = build_rank_examples(back, processed.items, users, candidates, **SIZES, count_tokens=words,
                              max_tokens=words(full.iloc[0]["prompt"]) + 30)  # fmt: skip
    assert (cut["history"].str.len() < full["history"].str.len()).any()
    assert all(h == f[-len(h):] for h, f in zip(cut["history"], full["history"], strict=True))  # the newest stay


def test_the_mask_lets_each_candidate_read_the_prompt_and_itself_only():
    segments = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])  # a prompt of 2 tokens, 2 candidates of 2, one pad
    allowed = candidate_attention_mask(segments)[0, 0] == 0
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0],  # candidate 2 does not see candidate 1
        [1, 1, 0, 0, 1, 1, 0],
        [1, 1, 0, 0, 0, 0, 1],  # the pad row sees something (no NaN); no real token sees the pad
    ], dtype=torch.bool)  # fmt: skip
    assert torch.equal(allowed, expected)


@pytest.mark.integration
def test_parallel_candidates_score_as_if_each_were_alone_after_the_prompt(tiny_llm):
    tokenizer, model = tiny_llm
    prompt = format_prompt(tokenizer, "History: Alpha (1990)\nFor each candidate movie, answer Yes or No.")
    titles = ["Beta (1991)", "Gamma: The Long Title (1992)", "Delta (1993)"]
    yes, no = verdict_token_ids(tokenizer, prompt)
    alone = []
    for title in titles:
        ids = tokenizer(prompt + rank_candidate(title), add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        alone.append((logits[yes] - logits[no]).item())
    together = rank_scores(tokenizer, model, [prompt, prompt], [titles, titles[::-1][:2]])
    np.testing.assert_allclose(together[0], alone, atol=1e-4)
    np.testing.assert_allclose(together[1], alone[::-1][:2], atol=1e-4)  # order and padding change nothing


@pytest.mark.integration
def test_collated_batches_mark_empty_candidate_slots_and_the_loss_is_a_softmax_over_the_list(tokenizer):
    prompt = "History: Alpha\n"
    features = [encode_candidates(tokenizer, prompt, ["B", "C", "D"]), encode_candidates(tokenizer, prompt, ["E"])]
    features[0]["answer"], features[1]["answer"] = 2, 0
    batch = collate_candidates(features, pad_token_id=0)
    assert batch["score_at"][1].tolist()[1:] == [-1, -1] and batch["answer"].tolist() == [2, 0]
    prompt_length = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    first_line = batch["segments"][0] == 1
    assert batch["position_ids"][0][first_line][0] == prompt_length  # every line starts where the prompt ends
    assert batch["position_ids"][0][batch["segments"][0] == 3][0] == prompt_length
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, float("-inf"), float("-inf"), float("-inf")]])
    loss = listwise_loss(scores, torch.tensor([2, 0]))
    assert loss.item() == pytest.approx(math.log(4) / 2, abs=1e-4)  # uniform over 4, certain of the only one


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


def test_ndcg_by_group_splits_users_and_counts_them():
    records = {"a": pd.DataFrame({USER: [0, 1, 2, 3], "rank": [0, 1_000_000, 0, 0]}),
               "b": pd.DataFrame({USER: [0, 1, 2, 3], "rank": [1_000_000, 0, 0, 0]})}  # fmt: skip
    groups = pd.Series(["short", "short", "long", "long"], index=[0, 1, 2, 3])
    table = ndcg_by_group(records, groups)
    assert table.loc["short", "users"] == 2 and table.loc["short", "a"] == 0.5 and table.loc["long", "b"] == 1.0


def test_rank_changes_list_promotions_first_and_flag_the_held_out_item():
    case = EvalCase(0, target=7, history=[1], retrieved=[5, 6, 7], listed=[5, 6, 7], seen={1}, keywords=[])
    changes = rank_changes(case, before=[5, 6, 7], after=[7, 5, 9], k=3)
    assert changes.iloc[0].to_dict() == {ITEM: 7, "before": 3, "after": 1, "held_out": True, "moved": 2}
    assert changes.set_index(ITEM).loc[6, "after"] is None or pd.isna(changes.set_index(ITEM).loc[6, "after"])
    assert changes.set_index(ITEM).loc[9, "before"] is None or pd.isna(changes.set_index(ITEM).loc[9, "before"])


# Collaborative item tokens (issue 27's second lever)


def _table(n_items: int = 10, width: int = 6, seed: int = 0) -> ItemTable:
    return ItemTable(torch.randn(n_items + 1, width, generator=torch.Generator().manual_seed(seed)), "twin")


def test_each_slot_becomes_one_token_of_its_item_and_lines_get_their_candidates(tokenizer):
    prompt = f"History:\n- Alpha{ITEM_SLOT}\n- Beta{ITEM_SLOT}\nAnswer Yes or No.\n"
    plain = encode_candidates(tokenizer, prompt.replace(ITEM_SLOT, ""), ["C", "D"])
    slotted = encode_candidates(tokenizer, prompt, ["C", "D"], [3, 4], [7, 8], slot_id=0)
    items = [i for i in slotted["item_at"] if i >= 0]
    assert items == [3, 4, 7, 8]  # history in order, then one per candidate line
    assert len(slotted["input_ids"]) == len(plain["input_ids"]) + 4  # one token per slot
    slots = [k for k, i in enumerate(slotted["item_at"]) if i >= 0]
    assert [slotted["input_ids"][k] for k in slots] == [0] * 4
    assert [slotted["segments"][k] for k in slots] == [0, 0, 1, 2]  # a line's slot is the line's own token
    assert all(slotted["score_at"][j] > slots[2 + j] for j in range(2))  # the verdict is read after the slot
    batch = collate_candidates([slotted, plain | {"item_at": [-1] * len(plain["input_ids"])}], pad_token_id=0)
    assert (batch["item_at"][1] == -1).all() and batch["item_at"].shape == batch["input_ids"].shape
    with pytest.raises(ValueError, match="2 item slots for 3 history items"):
        encode_candidates(tokenizer, prompt, ["C", "D"], [3, 4, 5], [7, 8])
    with pytest.raises(ValueError, match="every candidate"):
        encode_candidates(tokenizer, prompt, ["C", "D"], [3, 4], [7])


def test_the_item_table_comes_from_the_twins_checkpoint_and_names_its_contents(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="notebooks/03"):
        ItemTable.from_checkpoint(tmp_path / "sasrec_one_step_back")
    folder = tmp_path / "sasrec_one_step_back"
    folder.mkdir()
    weight = torch.randn(11, 6)
    save_file({EMBEDDING_KEY: weight, "other": torch.zeros(2)}, str(folder / "best.safetensors"))
    table = ItemTable.from_checkpoint(folder)
    assert torch.equal(table.weight, weight) and table.identity()["shape"] == [11, 6]
    assert table.identity() == ItemTable(weight.clone(), "sasrec_one_step_back").identity()  # contents, not address
    changed = weight.clone()
    changed[3, 0] += 1e-3
    assert ItemTable(changed, "sasrec_one_step_back").identity()["sha256"] != table.identity()["sha256"]
    (folder / "best.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="rerun notebook 03"):
        ItemTable.from_checkpoint(folder)


def test_the_projector_starts_at_the_llms_token_scale_and_is_saved_and_refused_by_its_table(tmp_path):
    torch.manual_seed(0)
    table = _table()
    tokens = ItemTokens(table, hidden_size=16, token_rms=0.05)
    vectors = tokens(torch.arange(10))
    assert vectors.shape == (10, 16) and vectors.pow(2).mean().sqrt().item() == pytest.approx(0.05, rel=1e-4)
    assert torch.equal(tokens(torch.tensor([2])), tokens.projector(tokens.table[3:4]))  # item i is row i + 1
    tokens.save(tmp_path)
    assert (tmp_path / ITEM_TOKENS_FILE).exists()
    again = load_item_tokens(tmp_path, table)
    assert torch.allclose(again(torch.arange(10)), vectors) and not again.training
    with pytest.raises(StaleArtifactError, match="another item table"):
        load_item_tokens(tmp_path, _table(seed=1))
    with pytest.raises(FileNotFoundError, match="rank_item_tokens=false"):
        load_item_tokens(tmp_path / "elsewhere", table)


def test_rank_examples_with_slots_carry_the_shown_history_and_the_candidates_only(synthetic, tokenizer):
    processed, data = synthetic
    back = data.one_step_back()
    users = list(range(data.n_users))
    examples = build_rank_examples(back, processed.items, users, _back_candidates(back, users, k=8), **SIZES,
                                   item_slots=True)  # fmt: skip
    dataset = to_rank_dataset(examples, tokenizer, item_slots=True)
    for example, row in zip(examples.to_dict("records"), dataset, strict=True):
        items = np.asarray(row["item_at"])
        in_prompt = items[np.asarray(row["segments"]) == 0]
        assert in_prompt[in_prompt >= 0].tolist() == example["history"]  # training items, oldest first
        lines = [items[np.asarray(row["segments"]) == j] for j in range(1, len(example["candidates"]) + 1)]
        assert [line[line >= 0].tolist() for line in lines] == [[c] for c in example["candidates"]]
        user = example["user"]
        assert not {data.valid[user], data.test[user]} & set(in_prompt.tolist())  # held-out items never in it
        assert row["prompt"].count(ITEM_SLOT) == len(example["history"]) + len(example["candidates"])
    plain = to_rank_dataset(build_rank_examples(back, processed.items, users, _back_candidates(back, users, k=8),
                                                **SIZES), tokenizer)  # fmt: skip
    assert plain["prompt"] != dataset["prompt"]  # the slots are part of the run's identity
    assert "item_table" not in rank_trainer_kwargs([1, 2], False)  # other runs' identities stay as they are


@pytest.mark.integration
def test_an_item_token_changes_its_own_candidates_score_only_and_learns(tiny_llm):
    tokenizer, model = tiny_llm
    prompt = f"History:\n- Alpha{ITEM_SLOT}\nFor each candidate, answer Yes or No.\n"
    titles, history, listed = ["Beta", "Gamma", "Delta"], [[1]], [[2, 3, 4]]
    torch.manual_seed(0)
    tokens = ItemTokens(_table(), model.config.hidden_size, token_rms=0.02)
    before = rank_scores(tokenizer, model, [prompt], [titles], tokens, history, listed)[0]
    with torch.no_grad():
        tokens.table[4, 0] += 5.0  # item 3 (row 3 + 1), the second candidate; one entry: LayerNorm ignores a shift
    after = rank_scores(tokenizer, model, [prompt], [titles], tokens, history, listed)[0]
    assert after[1] != pytest.approx(before[1], abs=1e-4)
    np.testing.assert_allclose(after[[0, 2]], before[[0, 2]], atol=1e-5)  # candidates do not see each other
    with pytest.raises(ValueError, match="items of every history"):
        rank_scores(tokenizer, model, [prompt], [titles], tokens)
    feature = encode_candidates(tokenizer, prompt, titles, history[0], listed[0])
    scores = candidate_scores(model, collate_candidates([feature], 0), verdict_token_ids(tokenizer, prompt), tokens)
    scores.sum().backward()
    assert tokens.projector[1].weight.grad is not None and tokens.projector[1].weight.grad.abs().sum() > 0


def test_earlier_prefixes_answer_with_earlier_training_items_and_the_first_is_the_one_prefix_example(synthetic):
    from palr_utils.palr_rank.examples import build_prefix_rank_examples
    from palr_utils.retrieval.candidates import STEPS_BACK

    processed, data = synthetic
    users = list(range(data.n_users))
    candidates = pd.concat([_back_candidates(data.steps_back(s), users, k=8).assign(**{STEPS_BACK: s})
                            for s in (1, 2, 3)])  # fmt: skip
    only_last = build_rank_examples(data.one_step_back(), processed.items, users,
                                    candidates[candidates[STEPS_BACK] == 1], **SIZES)  # fmt: skip
    examples = build_prefix_rank_examples(data, processed.items, users, candidates, prefixes=3, **SIZES)
    first = examples[examples[STEPS_BACK] == 1].drop(columns=STEPS_BACK).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, only_last)
    assert set(examples[STEPS_BACK]) == {1, 2, 3}
    for _, example in examples.iterrows():
        user, steps, (answer,) = example[USER], example[STEPS_BACK], example["label"]
        assert answer == int(data.train[user][-steps])  # a training item, never a held-out one
        assert example["history"] == data.train[user][:-steps][-5:].tolist()
        assert not {data.valid[user], data.test[user]} & ({answer} | set(example["history"]))
    with pytest.raises(ValueError, match="run notebook 03 again"):
        build_prefix_rank_examples(data, processed.items, users, candidates[candidates[STEPS_BACK] < 3], prefixes=3,
                                   **SIZES)  # fmt: skip
    with pytest.raises(ValueError, match="between 1 and 3"):
        build_prefix_rank_examples(data, processed.items, users, candidates, prefixes=4, **SIZES)

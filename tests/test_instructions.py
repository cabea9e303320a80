import numpy as np
import pandas as pd
import pytest

from palr_utils.core.constants import ATTRIBUTES, ITEM, SPLIT, TITLE, USER
from palr_utils.core.sampling import finetune_users
from palr_utils.core.titles import prompt_titles, shorten
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.finetune.instructions import (
    RECOMMEND_RETRIEVAL,
    InstructionConfig,
    TrainingGraph,
    build_instruction_examples,
    enrich_targets,
    keywords_without_answers,
    profile_history,
    swap_history_and_label,
)
from palr_utils.retrieval import SequenceData


def _hand_made() -> SequenceData:
    # user 0: items 0, 1;  user 1: items 1, 2, 3;  user 2: items 2, 4;  user 3: items 3, 4, 5
    train = [np.array(x) for x in ([0, 1], [1, 2, 3], [2, 4], [3, 4, 5])]
    return SequenceData(4, 7, train, valid=np.array([6, 6, 6, 6]), test=np.array([5, 0, 1, 2]))


def test_three_hop_affinity_on_a_hand_made_graph():
    graph = TrainingGraph(_hand_made())
    # user 0 -> item 1 -> user 1 -> items {1, 2, 3}; only item 1 connects user 0 to anyone
    assert graph.three_hop(0, exclude={0, 1}) == [2, 3]
    # user 2 -> item 2 -> user 1 -> {1,2,3}; item 4 -> user 3 -> {3,4,5}: item 3 is reached twice
    assert graph.three_hop(2, exclude={2, 4}) == [3, 1, 5]
    assert enrich_targets([9], graph, 2, n_targets=3, exclude={2, 4}) == [9, 3, 1]
    assert enrich_targets([7, 8, 9], graph, 2, n_targets=3, exclude=set()) == [7, 8, 9]


def test_swapping_keeps_each_examples_item_multiset():
    rng = np.random.default_rng(0)
    for _ in range(50):
        history, label = list(rng.integers(0, 20, 6)), list(rng.integers(0, 20, 3))
        new_history, new_label = swap_history_and_label(history, label, rng)
        assert sorted(new_history + new_label) == sorted(history + label)
        assert len(new_history) == len(history) and len(new_label) == len(label)


def test_titles_are_shortened_at_a_word_boundary():
    assert shorten("A very long product title indeed", 16) == "A very long…"
    assert shorten("Short", 16) == "Short"


def test_twenty_percent_of_users_seeded():
    users = finetune_users(1000, 0.2, seed=3)
    assert len(users) == 200 and len(set(users)) == 200
    assert np.array_equal(users, finetune_users(1000, 0.2, seed=3))
    assert not np.array_equal(users, finetune_users(1000, 0.2, seed=4))
    with pytest.raises(ValueError):
        finetune_users(10, 0.0, seed=1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("syn") / "d", SyntheticConfig(n_users=120, n_items=200), seed=5)
    processed = preprocess(load_movielens(folder))
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    return processed, data


def test_no_validation_or_test_item_leaks_into_any_example(synthetic):
    processed, data = synthetic
    users = finetune_users(data.n_users, 0.5, seed=1)
    rng = np.random.default_rng(0)
    candidates = pd.DataFrame({  # a retriever that (wrongly) proposes every user's held-out items first
        USER: np.repeat(users, 5), SPLIT: "train",
        ITEM: np.concatenate([[data.valid[u], data.test[u], *rng.integers(0, data.n_items, 3)] for u in users]),
    })  # fmt: skip
    spec = InstructionConfig(n_history=8, n_targets=5, n_candidates=12, n_retrieval_targets=2, swap_probability=0.5)
    examples = build_instruction_examples(data, processed.items, users, spec, seed=2, candidates=candidates)
    assert set(examples["task"]) == {"recommend", RECOMMEND_RETRIEVAL}
    titles = processed.items.set_index(ITEM)[TITLE]
    for _, example in examples.iterrows():
        user = example[USER]
        held_out = {data.valid[user], data.test[user]}
        shown = set(example["history"]) | set(example["label"]) | set(example["candidates"])
        assert not shown & held_out, (user, shown & held_out)
        for item in held_out:  # nor does their title appear in the text
            if not any(titles[item] in titles[i] for i in shown):
                assert titles[item] not in example["prompt"] + example["completion"]
        expected = spec.n_retrieval_targets if example["task"] == RECOMMEND_RETRIEVAL else spec.n_targets
        assert len(example["label"]) == expected
    recommend_labels = examples[examples["task"] == "recommend"].set_index(USER)["label"]
    retrieval = examples[examples["task"] == RECOMMEND_RETRIEVAL]
    for _, example in retrieval.iterrows():
        assert set(example["label"]) <= set(example["candidates"])
        assert len(example["candidates"]) == spec.n_candidates
        full_label = list(recommend_labels[example[USER]])
        # the answers are the first of the label; the label's later items are never offered as wrong answers
        assert list(example["label"]) == full_label[: spec.n_retrieval_targets]
        assert not set(full_label[spec.n_retrieval_targets :]) & set(example["candidates"])


def test_a_users_examples_depend_neither_on_other_users_nor_on_the_retrieval_settings(synthetic):
    processed, data = synthetic
    users = finetune_users(data.n_users, 0.3, seed=1)
    candidates = pd.DataFrame({USER: np.repeat(users, 3), SPLIT: "train", ITEM: np.tile([1, 2, 3], len(users))})
    spec = InstructionConfig(n_targets=5, n_candidates=10, swap_probability=0.5)
    everyone = build_instruction_examples(data, processed.items, users, spec, seed=4, candidates=candidates)
    alone = build_instruction_examples(data, processed.items, users[-1:], spec, seed=4, candidates=candidates)
    last = everyone[everyone[USER] == users[-1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(last, alone)
    other = InstructionConfig(n_targets=5, n_candidates=14, n_retrieval_targets=1, swap_probability=0.5)
    changed = build_instruction_examples(data, processed.items, users, other, seed=4, candidates=candidates)
    recommend = everyone["task"] == "recommend"
    pd.testing.assert_frame_equal(everyone[recommend], changed[changed["task"] == "recommend"])


def test_examples_are_deterministic_per_seed(synthetic):
    processed, data = synthetic
    users = finetune_users(data.n_users, 0.2, seed=1)
    first = build_instruction_examples(data, processed.items, users, InstructionConfig(), seed=7)
    again = build_instruction_examples(data, processed.items, users, InstructionConfig(), seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert "The user's watching history" in first["prompt"].iloc[0]


def test_profile_keywords_enter_the_prompt(synthetic):
    processed, data = synthetic
    examples = build_instruction_examples(
        data, processed.items, [0], InstructionConfig(), seed=1, profiles={0: ["space opera", "90s"]}
    )
    assert "The user's preferences: space opera, 90s." in examples["prompt"].iloc[0]
    assert processed.items[ATTRIBUTES].map(len).sum() > 0


def test_retrieval_answers_name_each_target_by_its_letter(synthetic):
    processed, data = synthetic
    candidates = pd.DataFrame({USER: [0] * 3, SPLIT: "train", ITEM: [100, 101, 102]})
    spec = InstructionConfig(n_targets=3, n_candidates=8, swap_probability=0)
    example = build_instruction_examples(data, processed.items, [0], spec, seed=3, candidates=candidates).iloc[1]
    titles = processed.items.set_index(ITEM)[TITLE]
    listed = example["candidates"]
    for line, target in zip(example["completion"].splitlines(), example["label"], strict=True):
        letter = "ABCDEFGH"[listed.index(target)]
        assert line == f"{letter}. {titles[target]}"
        assert f"\n{letter}. {titles[target]}\n" in example["prompt"]


def test_recommend_answers_are_numbered_lists_that_the_evaluation_parser_reads_back(synthetic):
    from palr_utils.evaluation.parsing import answer_lines

    processed, data = synthetic
    spec = InstructionConfig(n_targets=4, swap_probability=0)
    example = build_instruction_examples(data, processed.items, [3], spec, seed=5).iloc[0]
    texts = prompt_titles(processed.items.sort_values(ITEM)[TITLE].tolist(), spec.max_title_chars)
    expected = [texts[i] for i in example["label"]]
    assert example["completion"].splitlines()[0] == f"1. {expected[0]}"  # one certain first token: "1"
    assert [title for _, title in answer_lines(example["completion"])] == expected
    assert "as a numbered list" in example["prompt"]


def test_no_answer_title_stands_in_a_prompt_even_through_the_profile(synthetic):
    """The leak notebook 04 once showed: profiles written from the whole training history named the answers.

    Here every profile lists the titles of the history it was written from (the worst a model can do), the
    swap is frequent, and no text of any prompt may name one of its example's answers."""
    processed, data = synthetic
    users = finetune_users(data.n_users, 0.5, seed=1)
    spec = InstructionConfig(n_history=8, n_targets=5, n_candidates=12, n_retrieval_targets=2, swap_probability=0.9)
    titles = processed.items.set_index(ITEM)[TITLE]
    echoing = {u: [titles[i].lower() for i in profile_history(data, u, spec)[-20:]] for u in users}
    candidates = pd.DataFrame({USER: np.repeat(users, 3), SPLIT: "train", ITEM: np.tile([1, 2, 3], len(users))})
    examples = build_instruction_examples(data, processed.items, users, spec, 2, profiles=echoing,
                                          candidates=candidates)  # fmt: skip
    for _, example in examples.iterrows():
        preferences = [line for line in example["prompt"].splitlines() if line.startswith("The user's preferences")]
        answer_titles = {titles[i].lower() for i in example["label"]}
        shown = " ".join(preferences).lower()
        assert not {t for t in answer_titles if t in shown}, (example[USER], example["task"])
    # the profile of a fine-tuning user reads the prefix only: none of the items after it
    for user in users:
        assert len(profile_history(data, user, spec)) == max(1, len(data.train[user]) - spec.n_targets)


def test_keywords_naming_an_answer_are_dropped_and_others_kept():
    kept = keywords_without_answers(
        ["burning lighthouse", "comedy", "Burning Lighthouse (1995)", "90s drama"], ["Burning Lighthouse (1995)"]
    )
    assert kept == ["comedy", "90s drama"]


@pytest.mark.integration
def test_every_example_fits_max_length_with_the_chat_template_and_end_token(synthetic):
    """Examples are fitted without the template (``max_length - template_tokens``); what the trainer sees is the
    templated prompt, the answer and the end-of-sequence token: that must fit too."""
    from transformers import AutoTokenizer

    from palr_utils.llm.loading import format_prompt, smollm2_folder, template_tokens

    processed, data = synthetic
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
    max_length = 160  # small, so that many examples must lose history items to fit
    users = list(range(0, data.n_users, 3))
    examples = build_instruction_examples(data, processed.items, users, InstructionConfig(), seed=3, count_tokens=count,
                                          max_tokens=max_length - template_tokens(tokenizer))  # fmt: skip
    templated = [count(format_prompt(tokenizer, p) + c) + 1 for p, c in zip(examples["prompt"], examples["completion"],
                                                                          strict=True)]  # fmt: skip
    shortened = sum(len(h) < InstructionConfig().n_history for h in examples["history"])
    assert shortened > 0, "the test needs examples that had to be shortened"
    over = [n for n, h in zip(templated, examples["history"], strict=True) if n > max_length and len(h) > 1]
    assert not over, f"{len(over)} templated examples exceed max_length {max_length}: {over[:5]}"


def test_palr_v1_trains_on_recommend_only_and_palr_v2_on_both_tasks_in_their_order(synthetic):
    from palr_utils.finetune.instructions import RECOMMEND
    from palr_utils.finetune.runs import adapter_dir, instruction_runs, run_dir

    processed, data = synthetic
    users = finetune_users(data.n_users, 0.5, seed=1)
    candidates = pd.DataFrame({USER: np.repeat(users, 12), SPLIT: "train",
                               ITEM: np.tile(np.arange(12), len(users))})  # fmt: skip
    examples = build_instruction_examples(data, processed.items, users, InstructionConfig(), seed=2,
                                          candidates=candidates)  # fmt: skip
    runs = instruction_runs(examples)
    assert list(runs) == ["v1", "v2"]
    assert set(runs["v1"]["task"]) == {RECOMMEND}
    assert len(runs["v1"]) == len(users)
    pd.testing.assert_frame_equal(runs["v2"], examples)  # both tasks, in the order they were built
    assert adapter_dir("art", "v2") == run_dir("art", "v2") / "adapter"

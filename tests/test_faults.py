"""A fault campaign: bad input and unlucky interruptions, each built on purpose, each with a checked outcome.

Every case ends in the right result or in a clear error that names the file (and line) and the fix; none
ends in data that is silently wrong or in a state that needs deleting by hand. Grouped as in issue 16:
optional columns, ids, truncated input, raw Python errors, caches and resumes, output folders, small ones.
The fine-tuning resume case lives in test_finetune.py (it needs its tiny model).
"""

from __future__ import annotations

import gzip
import json
import warnings
import zipfile

import pytest

import palr_utils.data as data_module
from palr_utils.core.cache import append_jsonl, read_jsonl, resumable_map
from palr_utils.core.constants import ITEM, RATING, TITLE, USER
from palr_utils.core.io import StaleArtifactError, atomic_path
from palr_utils.course.notebook import claim_artifact_dir
from palr_utils.data import DataFormatError, load_raw_dataset, preprocess
from palr_utils.data.beauty import load_beauty
from palr_utils.data.custom import load_custom
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.evaluation.parsing import match_answer
from palr_utils.presets import parse_seed, resolve_config
from palr_utils.profiles import generate_profiles, parse_keywords
from palr_utils.retrieval import SASRec, SequenceData, TrainingConfig, train
from palr_utils.retrieval.sasrec import SASRecConfig

ITEMS = "item_id\ttitle\tgenres\n1\tOne\tA\n2\tTwo\tB\n3\tThree\t\n"


def _write(folder, interactions: str | bytes, items: str | bytes = ITEMS, name: str = "interactions.tsv"):
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in ((folder / name, interactions), (folder / "items.tsv", items)):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _lines(rows: list[str], header: str = "user_id\titem_id\ttimestamp") -> str:
    return "\n".join([header, *rows]) + "\n"


# --- optional columns -----------------------------------------------------------------------------


def test_rating_is_optional_from_loading_to_preprocessing(tmp_path):
    rows = [f"u{u}\t{i}\t{t}" for u in range(3) for t, i in enumerate([1, 2, 3])]
    raw = load_custom(_write(tmp_path, _lines(rows)))
    assert RATING not in raw.interactions.columns
    assert preprocess(raw, min_interactions=3).n_interactions == 9


def test_a_rating_column_with_a_missing_or_non_numeric_value_names_the_line(tmp_path):
    text = _lines(["u1\t1\t5\t4", "u1\t2\t6\tgood"], header="user_id\titem_id\ttimestamp\trating")
    with pytest.raises(DataFormatError, match=r"(?s)numeric rating.*line 3"):
        load_custom(_write(tmp_path, text))


# --- ids -------------------------------------------------------------------------------------------


def test_ids_that_differ_only_in_leading_zeros_stay_two_items(tmp_path):
    items = "item_id\ttitle\n7\tSeven\n007\tBond\n"
    raw = load_custom(_write(tmp_path, _lines(["u1\t7\t1", "u1\t007\t2"]), items))
    assert raw.interactions[ITEM].tolist() == ["7", "007"]
    assert raw.items.set_index(ITEM)[TITLE].to_dict() == {"7": "Seven", "007": "Bond"}


def test_one_text_id_in_items_keeps_both_files_comparable(tmp_path):
    items = ITEMS + "B00X\tA product\t\n"
    raw = load_custom(_write(tmp_path, _lines(["u1\t1\t1", "u1\t2\t2"]), items))
    assert raw.interactions[ITEM].tolist() == ["1", "2"]  # text everywhere, and every item still has its title
    assert set(raw.items[ITEM]) >= {"1", "2"}


def test_integer_ids_sort_numerically(tmp_path):
    raw = load_custom(_write(tmp_path, _lines(["u1\t10\t1", "u1\t2\t2"]), "item_id\ttitle\n2\tTwo\n10\tTen\n"))
    assert raw.interactions[ITEM].dtype == "int64"


def test_an_item_listed_twice_with_two_titles_is_an_error_naming_both_lines(tmp_path):
    items = "item_id\ttitle\n1\tOne\n2\tTwo\n1\tUno\n"
    with pytest.raises(DataFormatError, match=r"(?s)items.tsv.*line 2.*line 4.*one row per item_id"):
        load_custom(_write(tmp_path, _lines(["u1\t1\t1"]), items))


def test_an_item_listed_twice_identically_is_kept_once(tmp_path):
    items = "item_id\ttitle\n1\tOne\n1\tOne\n"
    assert len(load_custom(_write(tmp_path, _lines(["u1\t1\t1"]), items)).items) == 1


# --- truncated input -------------------------------------------------------------------------------


def test_a_last_line_cut_mid_field_is_refused(tmp_path):
    text = _lines(["u1\t1\t1", "u1\t2\t20"]) + "u1\t3\t2"  # the run writing the file stopped here
    with pytest.raises(DataFormatError, match=r"(?s)last line \(4\) does not end with a line break.*add a line"):
        load_custom(_write(tmp_path, text))


def test_a_last_line_cut_before_its_last_field_is_refused(tmp_path):
    text = _lines(["u1\t1\t1\t5", "u1\t2\t2"], header="user_id\titem_id\ttimestamp\trating")
    with pytest.raises(DataFormatError, match=r"(?s)4 tab-separated values.*line 3"):
        load_custom(_write(tmp_path, text))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_timestamps_are_refused(tmp_path, value):
    with pytest.raises(DataFormatError, match=r"(?s)finite, numeric timestamp.*line 3"):
        load_custom(_write(tmp_path, _lines(["u1\t1\t1", f"u1\t2\t{value}"])))


def test_a_truncated_gzip_names_the_file_and_the_fix(tmp_path):
    packed = gzip.compress(_lines([f"u1\t{i % 3 + 1}\t{i}" for i in range(2000)]).encode())
    _write(tmp_path, packed[: len(packed) // 2], name="interactions.tsv.gz")
    with pytest.raises(DataFormatError, match=r"(?s)interactions.tsv.gz is not a complete gzip file.*gzip -k"):
        load_custom(tmp_path)


def test_a_truncated_beauty_file_names_the_file(tmp_path):
    reviews = "\n".join(
        json.dumps({"reviewerID": f"U{i}", "asin": "B1", "overall": 5.0, "unixReviewTime": i}) for i in range(3000)
    )
    packed = gzip.compress(reviews.encode())
    (tmp_path / "reviews_Beauty_5.json.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "meta_Beauty.json.gz").write_bytes(gzip.compress(b"{'asin': 'B1', 'title': 'Soap'}\n"))
    with pytest.raises(DataFormatError, match=r"reviews_Beauty_5.json.gz cannot be read to the end"):
        load_beauty(tmp_path)


def _movielens_config(tmp_path):
    return resolve_config("cpu", "ml-1m", str(tmp_path), str(tmp_path / "out"))


def test_an_unpacked_movielens_folder_cut_short_or_of_other_data_is_refused(tmp_path):
    write_synthetic(tmp_path / "ml-1m", SyntheticConfig(n_users=30, n_items=40), seed=0)  # MovieLens' format
    with pytest.raises(DataFormatError, match=r"(?s)not the complete MovieLens-1M.*ratings.dat has .* 1,000,209"):
        load_raw_dataset(_movielens_config(tmp_path))


def test_a_file_changed_after_unpacking_the_verified_zip_is_refused(tmp_path, movielens_dir, monkeypatch):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in movielens_dir.iterdir():
            bundle.write(path, f"ml-1m/{path.name}")
    monkeypatch.setattr(data_module, "fetch", lambda remote, cache_dir: archive)
    config = _movielens_config(tmp_path)
    assert len(load_raw_dataset(config).interactions) == 37  # unpacked from the verified zip: trusted, then checked
    ratings = tmp_path / "ml-1m" / "ratings.dat"
    ratings.write_text("".join(ratings.read_text().splitlines(keepends=True)[:-5]))
    with pytest.raises(DataFormatError, match="ratings.dat in .* changed since they were unpacked"):
        load_raw_dataset(config)


# --- raw Python errors become messages ---------------------------------------------------------------


def test_latin1_items_are_read_with_a_warning_naming_the_line(tmp_path):
    items = "item_id\ttitle\n1\tMisérables, Les (1995)\n".encode("latin-1")
    with pytest.warns(UserWarning, match=r"items.tsv is not UTF-8 \(line 2.*Latin-1"):
        raw = load_custom(_write(tmp_path, _lines(["u1\t1\t1"]), items))
    assert raw.items[TITLE].tolist() == ["Misérables, Les (1995)"]


def test_a_byte_order_mark_and_windows_line_ends_are_fine(tmp_path):
    text = "\ufeff" + _lines(["u1\t1\t1", "u1\t2\t2"]).replace("\n", "\r\n")
    raw = load_custom(_write(tmp_path, text))
    assert raw.interactions[USER].tolist() == ["u1", "u1"] and raw.interactions[ITEM].tolist() == [1, 2]


def _trained_checkpoint(tmp_path):
    folder = write_synthetic(tmp_path / "syn", SyntheticConfig(n_users=40, n_items=60, max_history=20), seed=0)
    processed = preprocess(load_movielens(folder))
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    config = TrainingConfig(epochs=2, batch_size=16, eval_every=1)
    make = lambda: SASRec(processed.n_items, SASRecConfig(max_len=10, hidden_size=8))  # noqa: E731
    train(make(), data, config, tmp_path / "ckpt", progress=False)
    return data, TrainingConfig(**{**config.__dict__, "epochs": 3}), make


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "last.safetensors").write_bytes((f / "last.safetensors").read_bytes()[:100]),
        lambda f: (f / "optimizer.pt").write_bytes(b"junk that is no pickle"),
        lambda f: (f / "state.json").write_text('{"epoch": 2, "iden'),
    ],
    ids=["truncated-safetensors", "junk-optimizer-state", "cut-state-json"],
)
@pytest.mark.integration
def test_a_damaged_retriever_checkpoint_is_moved_aside_and_training_starts_afresh(tmp_path, damage):
    data, longer, make = _trained_checkpoint(tmp_path)
    damage(tmp_path / "ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(make(), data, longer, tmp_path / "ckpt", progress=False)
    message = " ".join(str(w.message) for w in caught)
    assert "cannot be read" in message and "training from the start" in message
    assert "weights_only" not in message  # torch's own advice (turn it off) would be unsafe
    assert history["epoch"].tolist() == [1, 2, 3]  # from the start, not from the damaged state
    assert len(list(tmp_path.glob("ckpt.damaged-*"))) == 1  # kept for inspection


# --- caches and resumes ----------------------------------------------------------------------------


def test_a_profile_is_not_reused_after_its_prompt_changed(tmp_path):
    cache = tmp_path / "profiles.jsonl"
    generate_profiles([0, 1], ["history A", "history B"], lambda ps: ["comedy"] * len(ps), cache)
    with pytest.raises(StaleArtifactError, match=r"(?s)1 user\(s\).*\[1\].*other inputs"):
        generate_profiles([0, 1], ["history A", "history B, longer"], lambda ps: ["drama"] * len(ps), cache)
    # the same prompts, and more users, extend the cache
    more = generate_profiles([0, 1, 2], ["history A", "history B", "C"], lambda ps: ["drama"] * len(ps), cache)
    assert more["keywords"].tolist() == [["comedy"], ["comedy"], ["drama"]]


def test_a_profile_cache_of_another_model_or_decoding_is_refused(tmp_path):
    cache = tmp_path / "profiles.jsonl"

    def writer(max_new_tokens):
        write = lambda ps: ["comedy"] * len(ps)  # noqa: E731
        write.identity = {"model": "smollm2", "max_new_tokens": max_new_tokens}
        return write

    generate_profiles([0], ["p"], writer(32), cache)
    with pytest.raises(StaleArtifactError, match="max_new_tokens"):
        generate_profiles([0], ["p"], writer(64), cache)


def test_a_profile_cache_from_before_fingerprints_is_refused_with_the_fix(tmp_path):
    cache = tmp_path / "profiles.jsonl"
    cache.write_text('{"user": 0, "keywords": ["comedy"], "raw_output": "comedy", "seconds": 0.1}\n')
    with pytest.raises(StaleArtifactError, match="without the fingerprint.*Delete it"):
        generate_profiles([0], ["p"], lambda ps: ["x"] * len(ps), cache)


def test_a_last_record_without_its_newline_is_not_glued_to_the_next_batch(tmp_path):
    cache = tmp_path / "cache.jsonl"
    cache.write_text('{"user": 0, "value": 1}')  # complete record, killed before its line break
    append_jsonl(cache, [{"user": 1, "value": 2}])
    assert read_jsonl(cache, "user")["user"].tolist() == [0, 1]
    records = resumable_map([0, 1, 2], ["a", "b", "c"], lambda xs: [{"value": 3} for _ in xs], cache)
    assert records["value"].tolist() == [1, 2, 3]


def test_a_broken_line_inside_a_cache_says_it_was_not_an_interruption(tmp_path):
    cache = tmp_path / "cache.jsonl"
    cache.write_text('{"user": 0}\n{"user": 1, oops}\n{"user": 2}\n')
    with pytest.raises(ValueError, match=r"cache.jsonl:2 is not valid JSON.*changed by hand.*Delete it"):
        read_jsonl(cache, "user")


def test_a_resumed_fine_tuning_keeps_the_time_budget_it_had_spent(tmp_path, monkeypatch):
    import time

    from transformers import TrainerControl, TrainerState

    from palr_utils.finetune.sft import _training_clock

    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    first, state = _training_clock(tmp_path, minutes=1), TrainerState()  # a one-minute budget
    first.on_train_begin(None, state, TrainerControl())
    clock[0], state.global_step = 140.0, 3  # 40 s of training, then a checkpoint and a kill
    first.on_save(None, state, TrainerControl())
    assert json.loads((tmp_path / "checkpoint-3" / "time_spent.json").read_text())["seconds"] == 40.0

    resumed = _training_clock(tmp_path, minutes=1)
    clock[0] = 1000.0
    resumed.on_train_begin(None, state, TrainerControl())
    clock[0] = 1019.0  # 40 + 19 s: within the minute
    assert not resumed.on_step_end(None, state, TrainerControl()).should_training_stop
    clock[0] = 1021.0  # 40 + 21 s: the minute is spent, not restarted by the resume
    stopped = resumed.on_step_end(None, state, TrainerControl())
    assert stopped.should_training_stop and stopped.should_save
    assert resumed.seconds() == 61.0  # the training time a notebook reports: both segments


def test_without_a_budget_the_clock_only_keeps_time(tmp_path, monkeypatch):
    import time

    from transformers import TrainerControl, TrainerState

    from palr_utils.finetune.sft import _training_clock

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    unbudgeted, state = _training_clock(tmp_path), TrainerState()
    unbudgeted.on_train_begin(None, state, TrainerControl())
    clock[0], state.global_step = 10_000.0, 5
    assert not unbudgeted.on_step_end(None, state, TrainerControl()).should_training_stop
    unbudgeted.on_save(None, state, TrainerControl())
    assert json.loads((tmp_path / "checkpoint-5" / "time_spent.json").read_text())["seconds"] == 10_000.0


def test_a_damaged_time_record_names_the_file_and_the_fix(tmp_path):
    from palr_utils.finetune.sft import spent_before

    assert spent_before(tmp_path / "time_spent.json") == 0.0  # a fresh run, or a checkpoint from before the record
    (tmp_path / "time_spent.json").write_text("{not json")
    with pytest.raises(ValueError, match="time_spent.json.*delete it"):
        spent_before(tmp_path / "time_spent.json")


def test_a_folder_is_replaced_whole_even_when_it_exists(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # nothing left aside


# --- output folders --------------------------------------------------------------------------------


def test_two_custom_data_sets_get_two_output_folders(tmp_path):
    first = resolve_config("cpu", "custom", str(tmp_path / "books"))
    second = resolve_config("cpu", "custom", str(tmp_path / "toys"))
    assert first.artifact_dir.name == "books-custom" and second.artifact_dir.name == "toys-custom"


def test_an_output_folder_of_one_data_set_is_refused_for_another(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    claim_artifact_dir(resolve_config("cpu", "custom", str(tmp_path / "books"), str(out)))
    claim_artifact_dir(resolve_config("cpu", "custom", str(tmp_path / "books"), str(out)))  # same data: fine
    with pytest.raises(StaleArtifactError, match=r"(?s)holds results of other data.*toys.*another ARTIFACT_DIR"):
        claim_artifact_dir(resolve_config("cpu", "custom", str(tmp_path / "toys"), str(out)))


def test_custom_data_without_a_folder_is_refused():
    with pytest.raises(ValueError, match="DATASET='custom' needs DATA_DIR"):
        resolve_config("cpu", "custom", "")


# --- smaller ones ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [(7, 7), ("7", 7), (7.0, 7), (" 12 ", 12), ("-3", -3)])
def test_whole_seeds_are_accepted(value, expected):
    assert parse_seed(value) == expected


@pytest.mark.parametrize("value", [1.9, "abc", "1.9", True, None, ""])
def test_other_seeds_are_refused_by_name(value):
    with pytest.raises(ValueError, match="SEED must be a whole number"):
        resolve_config("tiny", seed=value)


def test_titles_keep_their_quotes(tmp_path):
    items = 'item_id\ttitle\n1\t"No Makeup" Makeup Kit!\n2\t"BaByliss Pro dryer\n3\tPlain "quoted" middle\n'
    raw = load_custom(_write(tmp_path, _lines(["u1\t1\t1", "u1\t2\t2", "u1\t3\t3"]), items))
    assert raw.items[TITLE].tolist() == ['"No Makeup" Makeup Kit!', '"BaByliss Pro dryer', 'Plain "quoted" middle']


def test_both_interaction_files_present_is_an_error_not_a_guess(tmp_path):
    _write(tmp_path, _lines(["u1\t1\t1"]))
    (tmp_path / "interactions.tsv.gz").write_bytes(gzip.compress(_lines(["u2\t2\t1"]).encode()))
    with pytest.raises(DataFormatError, match="both interactions.tsv and interactions.tsv.gz"):
        load_custom(tmp_path)


@pytest.mark.parametrize("content, message", [("", "is empty"), ("user_id\titem_id\ttimestamp\n", "no records")])
def test_empty_files_say_so(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        load_custom(_write(tmp_path, content))


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match="names a column twice"):
        load_custom(_write(tmp_path, _lines(["u1\t1\t1\t2"], header="user_id\titem_id\ttimestamp\ttimestamp")))


@pytest.mark.parametrize("answer", ["1. The Godfather", "1. The Godfather (1972)", "1. Godfather, The"])
def test_titles_match_with_the_article_in_front_or_last(answer):
    parsed = match_answer(answer, [0, 1], ["Godfather, The (1972)", "Toy Story (1995)"])
    assert parsed.items == [0] and parsed.n_hallucinated == 0


def test_keywords_in_other_scripts_are_kept():
    assert parse_keywords("комедия, 科幻, film noir, 1999") == ["комедия", "科幻", "film noir"]


# --- items without a title (real catalogues have holes) ---------------------------------------------


def _holey(tmp_path):
    rows = [f"u{u}\t{i}\t{t}" for u in range(6) for t, i in enumerate([1, 2, 3, 4, 5, 9])]
    items = "item_id\ttitle\n1\tOne\n2\tTwo\n3\tThree\n4\tFour\n5\t\n"  # 5 has an empty title, 9 no row
    return _write(tmp_path, _lines(rows), items)


def test_items_without_a_title_get_their_id_with_a_warning_naming_them(tmp_path):
    with pytest.warns(UserWarning, match=r"2 of 6 interacted item\(s\) \(12 interactions\).*\['5', '9'\]"):
        raw = load_custom(_holey(tmp_path))
    assert len(raw.interactions) == 36
    assert raw.items.set_index(ITEM)[TITLE].to_dict() == {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "5", 9: "9"}


def test_items_without_a_title_can_be_dropped_before_the_core_filter(tmp_path):
    with pytest.warns(UserWarning, match="dropping them"):
        raw = load_custom(_holey(tmp_path), missing_titles="drop")
    assert sorted(raw.interactions[ITEM].unique()) == [1, 2, 3, 4] and len(raw.interactions) == 24
    with pytest.raises(DataFormatError, match="have no title"):
        load_custom(_holey(tmp_path), missing_titles="error")


def test_no_titles_at_all_is_still_an_error(tmp_path):
    with pytest.raises(DataFormatError, match="None of the 2 items"):
        load_custom(_write(tmp_path, _lines(["u1\t1\t1", "u1\t2\t2"]), "item_id\ttitle\n1\t\n2\t\n"))


def test_the_missing_titles_choice_reaches_the_loader_from_the_config(tmp_path):
    config = resolve_config("tiny", "custom", str(_holey(tmp_path)), str(tmp_path / "out"))
    with pytest.warns(UserWarning):
        assert len(load_raw_dataset(config, missing_titles="drop").interactions) == 24


def test_interactions_keep_their_count_and_order_through_loading(tmp_path):
    rows = ["u1\t3\t30", "u1\t1\t10", "u2\t2\t5"]
    raw = load_custom(_write(tmp_path, _lines(rows)))
    assert raw.interactions[[USER, ITEM]].values.tolist() == [["u1", 3], ["u1", 1], ["u2", 2]]
    assert raw.interactions["timestamp"].tolist() == [30, 10, 5]  # ordering is preprocessing's job, not the loader's


@pytest.mark.integration
def test_a_trainer_checkpoint_cut_off_mid_save_is_skipped_when_resuming(tmp_path):
    from palr_utils.finetune.sft import last_complete_checkpoint

    for step, state in ((50, '{"global_step": 50}'), (100, '{"global_step": 1'), (150, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    with pytest.warns(UserWarning, match="incomplete"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-50")
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None


@pytest.mark.integration
def test_a_damaged_adapter_names_its_folder_and_the_fix(tmp_path):
    from palr_utils.llm.loading import LLMConfig, load_finetuned

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8')  # cut short
    with pytest.raises(RuntimeError, match=r"(?s)adapter cannot be loaded.*rerun notebook 04"):
        load_finetuned(LLMConfig(), adapter)  # SmolLM2, which ships offline

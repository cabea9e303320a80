"""The second fault campaign (issue 31): each case built as a user would make it, each with its checked outcome.

Titles the LLM can tell apart, artifact sets committed whole, atomic claims of an output folder, odd timestamps
and ids, unusable paths, and answers that must not match anything. The fine-tuning cases (training on, and a
run whose last checkpoint is its end) live in test_finetune.py beside its tiny model.
"""

from __future__ import annotations

import codecs
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from palr_utils.core.constants import ATTRIBUTES, ITEM, TIMESTAMP, TITLE, USER
from palr_utils.core.io import (
    ArtifactDirError,
    ArtifactSet,
    IncompleteArtifactError,
    StaleArtifactError,
    describe_error,
    prepare_artifact_dir,
    require_artifacts,
)
from palr_utils.core.titles import best_match, normalise_title, prompt_titles, shorten
from palr_utils.course.notebook import claim_artifact_dir
from palr_utils.data import DataFormatError, load_processed, preprocess, save_processed
from palr_utils.data.custom import load_custom
from palr_utils.evaluation.parsing import match_answer
from palr_utils.presets import resolve_config
from palr_utils.profiles import build_profile_prompts, parse_keywords

SHARED_BEAUTY = Path(__file__).resolve().parents[2] / "shared" / "data" / "beauty" / "items.tsv"


def _write(folder: Path, interactions: str | bytes, items: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in ((folder / "interactions.tsv", interactions), (folder / "items.tsv", items)):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _lines(rows: list[str], header: str = "user_id\titem_id\ttimestamp") -> str:
    return "\n".join([header, *rows]) + "\n"


def _square(n_users: int = 5, items: tuple = (1, 2, 3, 4, 5)) -> list[str]:
    """Every user interacts with every item once: survives a 5-core filter."""
    return [f"u{u}\t{i}\t{t}" for u in range(n_users) for t, i in enumerate(items)]


ITEMS = "item_id\ttitle\n" + "".join(f"{i}\tItem {i}\n" for i in range(1, 6))


# --- 1. titles the LLM can tell apart ---------------------------------------------------------------


BRUSHES = [
    "Bdellium Tools Professional Antibacterial Makeup Brush Eco-Friendly Bamboo Series - Foundation 955",
    "Bdellium Tools Professional Antibacterial Makeup Brush Eco-Friendly Bamboo Series - Angled 957",
    "Bdellium Tools Professional Antibacterial Makeup Brush Eco-Friendly Bamboo Series - Powder 951",
]


def test_titles_that_share_their_cut_keep_the_words_that_tell_them_apart():
    texts = prompt_titles([*BRUSHES, "Short title"], 60)
    assert len({t.lower() for t in texts}) == 4
    assert [t.split()[-2:] for t in texts[:3]] == [["Foundation", "955"], ["Angled", "957"], ["Powder", "951"]]
    assert all(len(t) <= 70 for t in texts) and texts[3] == "Short title"


def test_identical_titles_get_their_id_and_unique_ones_stay_as_they_were():
    titles = ["Blinc Kiss Me Mascara, Dark Brown", "Toy Story (1995)", "Blinc Kiss Me Mascara, Dark Brown"]
    assert prompt_titles(titles, 60) == [f"{titles[0]} (#0)", titles[1], f"{titles[0]} (#2)"]
    assert prompt_titles(["Toy Story (1995)", "Heat (1995)"], 60) == ["Toy Story (1995)", "Heat (1995)"]


def test_an_answer_naming_one_of_two_lookalikes_is_matched_to_that_one():
    texts = prompt_titles(BRUSHES, 60)
    parsed = match_answer(f"1. {texts[1]}\n2. {texts[2]}", [0, 1, 2], texts)
    assert parsed.items == [1, 2] and parsed.n_hallucinated == 0


@pytest.mark.skipif(not SHARED_BEAUTY.exists(), reason="needs ../shared/data/beauty")
def test_every_beauty_product_reads_differently_in_prompts():
    raw = load_custom(SHARED_BEAUTY.parent)  # 15 products without a title get their id (a warning says so)
    titles = raw.items.sort_values(ITEM)[TITLE].tolist()
    cut = [shorten(t, 60) for t in titles]
    assert len(set(cut)) < len(cut) - 100  # the problem exists: over a hundred products collide when cut
    texts = prompt_titles(titles, 60)
    assert len({" ".join(t.lower().split()) for t in texts}) == len(texts)
    assert max(map(len, texts)) <= 80


# --- 2. a set of artifacts half replaced ----------------------------------------------------------


def _processed(tmp_path: Path, rows=None):
    raw = load_custom(_write(tmp_path / "data", _lines(rows or _square()), ITEMS))
    return preprocess(raw)


def test_a_stage_rerun_stopped_half_way_leaves_a_set_that_loading_refuses(tmp_path):
    out = tmp_path / "out"
    save_processed(_processed(tmp_path), out)
    assert load_processed(out).n_users == 5
    rerun = ArtifactSet(out, "01_preprocessing")  # a rerun on re-exported data, stopped after its first file
    rerun.write_parquet(pd.DataFrame({USER: [0], ITEM: [1], TIMESTAMP: [0], "split": ["test"]}), "interactions.parquet")
    with pytest.raises(IncompleteArtifactError, match=r"(?s)no record that 01_preprocessing finished.*again"):
        load_processed(out)
    save_processed(_processed(tmp_path), out)  # the rerun goes to its end
    assert load_processed(out).n_interactions == 25


def test_a_file_changed_after_its_stage_committed_it_is_refused(tmp_path):
    out = tmp_path / "out"
    save_processed(_processed(tmp_path), out)
    items = pd.read_parquet(out / "items.parquet")
    items.assign(**{TITLE: items[TITLE].iloc[::-1].to_numpy()}).to_parquet(out / "items.parquet", index=False)
    with pytest.raises(IncompleteArtifactError, match="items.parquet changed after 01_preprocessing"):
        load_processed(out)


def test_the_retrievers_two_candidate_files_are_one_set(tmp_path):
    exported = ArtifactSet(tmp_path, "03_sasrec_retrieval")
    exported.write_parquet(pd.DataFrame({"a": [1]}), "candidates.parquet")
    with pytest.raises(IncompleteArtifactError):  # the twin's file is not written yet: no set to read
        require_artifacts(tmp_path, ["candidates.parquet"], "03_sasrec_retrieval")
    exported.write_parquet(pd.DataFrame({"a": [2]}), "rank_candidates.parquet")
    exported.commit()
    require_artifacts(tmp_path, ["candidates.parquet", "rank_candidates.parquet"], "03_sasrec_retrieval")


# --- 3. two runs claiming one folder at once ----------------------------------------------------------


def test_of_two_runs_claiming_one_folder_at_once_with_different_data_exactly_one_wins(tmp_path):
    for trial in range(40):
        out = tmp_path / f"out{trial}"
        configs = [resolve_config("cpu", "custom", str(tmp_path / name), str(out)) for name in ("books", "toys")]
        barrier, outcomes = threading.Barrier(2), []

        def claim(config, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                claim_artifact_dir(config)
                outcomes.append("claimed")
            except StaleArtifactError as error:
                outcomes.append(str(error))

        threads = [threading.Thread(target=claim, args=(config,)) for config in configs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count("claimed") == 1, outcomes
        refusal = next(o for o in outcomes if o != "claimed")
        assert f"claimed by process {os.getpid()}" in refusal


# --- 5. timestamps and ids -----------------------------------------------------------------------


def test_a_user_with_seconds_and_milliseconds_mixed_is_refused_naming_the_lines(tmp_path):
    rows = [f"u1\t{i}\t{1_600_000_000 + i}" for i in range(1, 4)] + ["u1\t4\t1600000000004000", "u2\t1\t5"]
    with pytest.raises(DataFormatError, match=r"(?s)1 user\(s\) differ more than 100-fold.*line 2.*line 5.*one unit"):
        load_custom(_write(tmp_path, _lines(rows), ITEMS))


def test_order_keys_and_plain_unix_seconds_are_not_taken_for_mixed_units(tmp_path):
    rows = [f"u1\t{i}\t{i - 1}" for i in range(1, 6)] + [f"u2\t{i}\t{1_600_000_000 + 86_400 * i}" for i in range(1, 6)]
    assert len(load_custom(_write(tmp_path, _lines(rows), ITEMS)).interactions) == 10


def test_nanosecond_timestamps_keep_their_order_and_integers_beyond_64_bits_are_refused(tmp_path):
    stamps = [1_700_000_000_000_000_001 + i for i in range(5)]  # one nanosecond apart: floats cannot tell them apart
    rows = [f"u1\t{i}\t{t}" for i, t in zip([5, 4, 3, 2, 1], stamps, strict=True)]
    raw = load_custom(_write(tmp_path / "ns", _lines(rows), ITEMS))
    assert raw.interactions[TIMESTAMP].tolist() == stamps
    with pytest.raises(DataFormatError, match=r"(?s)within 64 bits.*line 3"):
        load_custom(_write(tmp_path / "big", _lines(["u1\t1\t5", "u1\t2\t99999999999999999999"]), ITEMS))


def test_ids_of_twenty_digits_are_kept_as_text_ids(tmp_path):
    big = ["12345678901234567890", "12345678901234567891"]
    items = "item_id\ttitle\n" + "".join(f"{i}\tItem {i}\n" for i in big)
    raw = load_custom(_write(tmp_path, _lines([f"u1\t{big[0]}\t1", f"u1\t{big[1]}\t2"]), items))
    assert raw.interactions[ITEM].tolist() == big and raw.items.set_index(ITEM)[TITLE][big[1]] == f"Item {big[1]}"


# --- 6. control characters, titles of punctuation, letters against titles --------------------------


@pytest.mark.parametrize("character", ["\u2028", "\x0b", "\x1c", "\x85", "\r", "\x1b", "\u200b"])
def test_control_characters_inside_titles_become_spaces_with_a_warning(tmp_path, character):
    items = ITEMS.replace("Item 2", f"Item{character}2")
    with pytest.warns(UserWarning, match=r"1 title\(s\) held control characters"):
        raw = load_custom(_write(tmp_path, _lines(_square()), items))
    title = raw.items.set_index(ITEM)[TITLE][2]
    assert title in ("Item 2", "Item2") and len(title.splitlines()) == 1


def test_a_nul_inside_a_title_is_cleaned_not_taken_for_utf16(tmp_path):
    with pytest.warns(UserWarning, match="control characters"):
        raw = load_custom(_write(tmp_path, _lines(_square()), ITEMS.replace("Item 3", "Item\x003")))
    assert raw.items.set_index(ITEM)[TITLE][3] == "Item 3"


def test_a_title_of_only_control_characters_counts_as_missing(tmp_path):
    items = ITEMS.replace("Item 4", "\x1b\u2028")
    with pytest.warns(UserWarning) as caught:
        raw = load_custom(_write(tmp_path, _lines(_square()), items))
    assert raw.items.set_index(ITEM)[TITLE][4] == "4"  # the id stands in, as for any missing title
    assert any("no title" in str(w.message) for w in caught)


@pytest.mark.parametrize("answer", ["---", "…", "!!!", "1. ?!"])
def test_an_answer_of_punctuation_names_no_item_even_a_title_of_punctuation(answer):
    parsed = match_answer(answer, [0, 1], ["!!!", "Toy Story (1995)"])
    assert parsed.items == [] and parsed.n_hallucinated == 1


def test_a_letter_that_names_another_candidate_than_its_title_is_counted():
    titles = [f"Movie {i}" for i in range(50)]
    labels = {chr(ord("A") + i): i for i in range(26)} | {chr(ord("a") + i): 26 + i for i in range(24)}
    parsed = match_answer("a. Movie 0\nB. Movie 1", list(range(50)), titles, labels)
    assert parsed.items == [26, 1]  # the letter wins, as documented
    assert parsed.n_disagreements == 1


def test_normalising_keeps_ordinary_text():
    assert normalise_title("  Amélie  (2001)\t") == "Amélie (2001)"


# --- 7. profile prompts fit the model's context ------------------------------------------------------


def test_profile_prompts_cut_long_titles_and_drop_the_oldest_items_until_they_fit():
    items = pd.DataFrame({ITEM: range(4), TITLE: ["word " * 3000, "Short (1999)", "Other (2000)", "Third (2001)"],
                          ATTRIBUTES: [[], [], [], []]})  # fmt: skip
    words = lambda text: len(text.split())  # noqa: E731
    (prompt,) = build_profile_prompts([[0, 1, 2, 3]], items, [0], max_title_chars=60)
    assert words(prompt) < 100  # the 3,000-word title is cut
    (fitted,) = build_profile_prompts([[0, 1, 2, 3]], items, [0], count_tokens=words, max_tokens=words(prompt) - 2)
    assert "Third (2001)" in fitted and "word word" not in fitted and words(fitted) <= words(prompt) - 2


@pytest.mark.integration
def test_fifteen_long_titles_fit_smollm2s_context():
    from palr_utils.llm.loading import SMOLLM2, load_tokenizer, prompt_fitting
    from palr_utils.llm.prompts import PROFILE_ANSWER_PREFIX, PROFILE_SYSTEM

    tokenizer = load_tokenizer(SMOLLM2)
    fitting = prompt_fitting(tokenizer, SMOLLM2, 32, PROFILE_SYSTEM, PROFILE_ANSWER_PREFIX)
    items = pd.DataFrame({ITEM: range(15), TITLE: [f"Product {i} " + "long words " * 1200 for i in range(15)],
                          ATTRIBUTES: [[]] * 15})  # fmt: skip
    (prompt,) = build_profile_prompts([list(range(15))], items, [0], **fitting)
    assert fitting["count_tokens"](prompt) <= fitting["max_tokens"] < 8192


# --- 8. keywords and numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("키워드: 코미디, 드라마", ["코미디", "드라마"]),
        ("ключевые слова: комедия, драма", ["комедия", "драма"]),
        ("喜剧、动作，科幻", ["喜剧", "动作", "科幻"]),
        ("Keywords: comedy, drama", ["comedy", "drama"]),
    ],
)
def test_lead_ins_in_other_languages_and_full_width_separators(answer, expected):
    assert parse_keywords(answer) == expected


def test_a_title_with_another_number_is_not_matched_to_its_sequel():
    titles = ["Godfather: Part II, The (1974)", "Rocky III (1982)"]
    assert match_answer("1. The Godfather: Part IV", [0, 1], titles).items == []
    assert match_answer("1. The Godfather: Part II\n2. Rocky III", [0, 1], titles).items == [0, 1]
    assert best_match("Rocky V", ["Rocky III", "Rocky V"]) == 1


# --- 9. files that are not files, and encodings ----------------------------------------------------


def test_a_folder_a_broken_link_or_a_pipe_in_place_of_a_file_is_refused_by_name(tmp_path):
    folder = _write(tmp_path / "a", _lines(_square()), ITEMS)
    (folder / "items.tsv").unlink()
    (folder / "items.tsv").mkdir()
    with pytest.raises(DataFormatError, match="items.tsv is a folder"):
        load_custom(folder)
    folder = _write(tmp_path / "b", _lines(_square()), ITEMS)
    (folder / "interactions.tsv").unlink()
    (folder / "interactions.tsv").symlink_to(tmp_path / "gone.tsv")
    with pytest.raises(DataFormatError, match=r"symbolic link to .*gone.tsv, which does not exist"):
        load_custom(folder)
    folder = _write(tmp_path / "c", _lines(_square()), ITEMS)
    (folder / "interactions.tsv").unlink()
    os.mkfifo(folder / "interactions.tsv")
    with pytest.raises(DataFormatError, match="not a regular file"):  # refused before reading: no hang
        load_custom(folder)


def test_utf16_with_its_mark_is_read_and_without_it_is_refused_with_the_fix(tmp_path):
    text = _lines(_square())
    raw = load_custom(_write(tmp_path / "bom", codecs.BOM_UTF16_LE + text.encode("utf-16-le"), ITEMS))
    assert len(raw.interactions) == 25
    with pytest.raises(DataFormatError, match=r"(?s)UTF-16 or UTF-32 without a byte-order mark.*iconv"):
        load_custom(_write(tmp_path / "nobom", text.encode("utf-16-le"), ITEMS))


# --- 10. an output folder that cannot be one ------------------------------------------------------------


def test_an_unusable_artifact_folder_is_named_with_its_cause(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        tmp_path / "a-file": "is a file, not a folder",
        tmp_path / "a-file" / "below": "lies below .*a-file, which is a file",
        tmp_path / "dangling": "symbolic link to .*nowhere, which does not exist",
        Path("/proc/palr-artifacts"): "cannot be created",
    }
    for path, message in cases.items():
        with pytest.raises(ArtifactDirError, match=message):
            prepare_artifact_dir(path)
    assert prepare_artifact_dir(tmp_path / "new" / "folder").is_dir()


def test_the_runner_checks_the_artifact_folder_before_anything_else(tmp_path):
    from palr_utils.course.runner import run_notebooks

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ArtifactDirError, match="is a file"):
        run_notebooks("tiny", artifact_dir=str(tmp_path / "a-file"), notebooks=[])


# --- 11. a 5-core filter that leaves nothing ----------------------------------------------------------


def test_a_core_filter_that_leaves_nothing_shows_each_round_and_what_to_do(tmp_path):
    rows = [f"u{u}\t{i}\t{t}" for u in range(6) for t, i in enumerate([1, 2, 3, 4])]  # 4 items per user
    raw = load_custom(_write(tmp_path, _lines(rows), ITEMS))
    with pytest.raises(DataFormatError, match=r"(?s)interactions.tsv: no interactions survive.*before: 6 users, "
                       r"4 items, 24 interactions.*smaller k"):  # fmt: skip
        preprocess(raw, min_interactions=5)


# --- 12. torch's advice on pickles is never passed on ------------------------------------------------


def test_an_unpickling_refusal_is_summarised_without_torchs_advice(tmp_path):
    import torch

    torch.save({"state": object()}, tmp_path / "optimizer.pt")  # a pickle of an object: weights_only refuses it
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever torch raises
        torch.load(tmp_path / "optimizer.pt", weights_only=True)
    assert "weights_only" in str(caught.value)  # torch's own text advises turning it off
    assert "weights_only" not in describe_error(caught.value) and "pickled objects" in describe_error(caught.value)


def test_ordinal_counters_that_grow_past_a_hundred_million_are_no_mixed_units(tmp_path):
    rows = [f"u1\t{i}\t{t}" for i, t in zip(range(1, 6), [1_000_000, 2_000_000, 90_000_000, 120_000_000, 150_000_000],
                                             strict=True)]  # fmt: skip
    assert len(load_custom(_write(tmp_path, _lines(rows), ITEMS)).interactions) == 5


def test_a_sample_of_users_claims_its_own_data_in_a_folder(tmp_path):
    out = tmp_path / "out"
    claim_artifact_dir(resolve_config("tiny", artifact_dir=str(out)))
    with pytest.raises(StaleArtifactError, match="max_users"):
        claim_artifact_dir(resolve_config("tiny", artifact_dir=str(out), overrides="max_users=50"))

import pandas as pd
import pytest

from palr_utils.core.constants import ITEM, RAW_ITEM, RAW_USER, SPLIT, TIMESTAMP, TITLE, USER
from palr_utils.data import RawDataset, preprocess
from palr_utils.data.preprocessing import (
    build_id_map,
    drop_duplicate_pairs,
    k_core,
    leave_one_out,
    sort_chronologically,
)
from palr_utils.data.schema import DataFormatError


def test_sort_is_chronological_per_user_and_stable_for_ties(frame_of):
    frame = frame_of([(2, "b", 5), (1, "x", 9), (1, "y", 3), (1, "z", 3)])
    ordered = sort_chronologically(frame)
    assert ordered[ITEM].tolist() == ["y", "z", "x", "b"]  # y before z: same time, file order kept


def test_duplicates_keep_the_first_occurrence(frame_of):
    frame = sort_chronologically(frame_of([(1, "a", 1), (1, "b", 2), (1, "a", 3), (2, "a", 4)]))
    kept = drop_duplicate_pairs(frame)
    assert list(zip(kept[USER], kept[ITEM], kept[TIMESTAMP], strict=True)) == [
        (1, "a", 1),
        (1, "b", 2),
        (2, "a", 4),
    ]


def test_k_core_cascade_removes_more_than_one_pass(frame_of):
    # Item 'z' has 1 interaction -> removed; that leaves user 9 with 1 interaction -> removed;
    # that leaves item 'y' with 1 interaction -> removed, although 'y' had 2 before.
    rows = [(u, i, 0) for u in (1, 2) for i in ("a", "b")] + [(1, "y", 1), (9, "y", 0), (9, "z", 1)]
    core = k_core(frame_of(rows), k=2)
    assert set(core[ITEM]) == {"a", "b"}
    assert set(core[USER]) == {1, 2}


def test_k_core_that_removes_everything_says_so(frame_of):
    with pytest.raises(DataFormatError, match="5-core"):
        k_core(frame_of([(1, "a", 0), (2, "b", 0)]), k=5)


def test_id_map_follows_sorted_raw_ids():
    mapping = build_id_map(pd.Series([30, 10, 20, 10]))
    assert mapping.to_dict() == {10: 0, 20: 1, 30: 2}


def test_leave_one_out_labels_the_last_two_interactions(frame_of):
    frame = frame_of([(1, "a", 0), (1, "b", 1), (1, "c", 2), (1, "d", 3), (2, "x", 0), (2, "y", 1), (2, "z", 2)])
    labelled = leave_one_out(frame)
    assert labelled[SPLIT].tolist() == ["train", "train", "valid", "test", "train", "valid", "test"]


def test_preprocess_end_to_end_keeps_maps_and_order():
    rows = [(u, i, 10 * u + t) for u in (30, 10, 20, 40, 50) for t, i in enumerate((7, 5, 9, 8, 6))]
    raw = RawDataset(
        name="hand-made",
        interactions=pd.DataFrame(rows, columns=[USER, ITEM, TIMESTAMP]).assign(rating=3),
        items=pd.DataFrame({ITEM: [5, 6, 7, 8, 9, 11], TITLE: list("ABCDEF"), "attributes": [[]] * 6}),
    )
    processed = preprocess(raw, min_interactions=5)
    assert (processed.n_users, processed.n_items, processed.n_interactions) == (5, 5, 25)
    assert processed.users[RAW_USER].tolist() == [10, 20, 30, 40, 50]
    assert processed.items[RAW_ITEM].tolist() == [5, 6, 7, 8, 9]  # item 11 was never interacted with
    assert processed.items[TITLE].tolist() == list("ABCDE")
    first_user = processed.interactions[processed.interactions[USER] == 0]
    assert first_user[ITEM].tolist() == [2, 0, 4, 3, 1]  # raw 7, 5, 9, 8, 6 in time order
    assert first_user[SPLIT].tolist()[-2:] == ["valid", "test"]


def test_interacted_items_without_a_title_are_an_error():
    rows = [(u, i, t) for u in range(5) for t, i in enumerate(range(5))]
    raw = RawDataset(
        name="no-titles",
        interactions=pd.DataFrame(rows, columns=[USER, ITEM, TIMESTAMP]),
        items=pd.DataFrame({ITEM: [0, 1], TITLE: ["a", "b"], "attributes": [[], []]}),
    )
    with pytest.raises(DataFormatError, match="no title"):
        preprocess(raw)


def test_a_sample_of_users_keeps_all_their_interactions_and_is_seeded(frame_of):
    from palr_utils.data.preprocessing import sample_users

    rows = [(u, f"i{t}", t) for u in range(10) for t in range(4)]
    raw = RawDataset("toy", frame_of(rows), pd.DataFrame({ITEM: [f"i{t}" for t in range(4)], TITLE: list("abcd"),
                                                           "attributes": [[]] * 4}))  # fmt: skip
    sample = sample_users(raw, 3, seed=7)
    assert sample.interactions[USER].nunique() == 3 and len(sample.interactions) == 12  # whole histories
    assert sample.interactions.equals(sample_users(raw, 3, seed=7).interactions)  # the same sample again
    assert not sample.interactions.equals(sample_users(raw, 3, seed=8).interactions)
    assert sample_users(raw, None, seed=7) is raw and sample_users(raw, 50, seed=7) is raw
    with pytest.raises(ValueError, match="at least 1"):
        sample_users(raw, 0, seed=7)

import gzip

import pytest

from palr_utils.core.constants import ATTRIBUTES, ITEM, RATING, TIMESTAMP, TITLE, USER
from palr_utils.data.beauty import META_FILE, REVIEWS_FILE, load_beauty
from palr_utils.data.custom import load_custom
from palr_utils.data.movielens import find_movielens_folder, load_movielens
from palr_utils.data.schema import DataFormatError
from tests.conftest import write_gzip_lines

# --- MovieLens -------------------------------------------------------------------------------


def test_movielens_parses_ratings_movies_and_users(movielens_dir):
    raw = load_movielens(movielens_dir)
    assert len(raw.interactions) == 37
    assert raw.interactions.columns.tolist() == [USER, ITEM, RATING, TIMESTAMP]
    assert raw.interactions[TIMESTAMP].dtype == "int64"
    titles = raw.items.set_index(ITEM)[TITLE]
    assert titles[7] == "Misérables, Les (1995)"  # latin-1 decoded
    assert raw.items.set_index(ITEM)[ATTRIBUTES][1] == ["Drama", "Comedy"]
    assert raw.users["gender"].tolist() == ["F"] * 6


def test_movielens_users_file_is_optional(movielens_dir):
    (movielens_dir / "users.dat").unlink()
    assert load_movielens(movielens_dir).users is None


def test_movielens_folder_is_found_in_data_dir_or_its_ml_1m_subfolder(tmp_path, movielens_dir):
    assert find_movielens_folder(movielens_dir) == movielens_dir
    assert find_movielens_folder(tmp_path) is None


@pytest.mark.parametrize(
    "bad_line, reason",
    [("1::2::3", "malformed"), ("1::2::3::4::5", "malformed"), ("1::two::3::4", "integer item")],
)
def test_movielens_malformed_lines_are_reported_with_line_numbers(movielens_dir, bad_line, reason):
    ratings = movielens_dir / "ratings.dat"
    lines = ratings.read_text(encoding="latin-1").splitlines()
    lines.insert(2, bad_line)
    ratings.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=rf"(?s){reason}.*line 3:"):
        load_movielens(movielens_dir)


def test_movielens_missing_ratings_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.dat"):
        load_movielens(tmp_path)


# --- Amazon Beauty ---------------------------------------------------------------------------


def _beauty_files(folder, extra_meta=()):
    write_gzip_lines(
        folder / REVIEWS_FILE,
        [
            '{"reviewerID": "U1", "asin": "B001", "overall": 5.0, "unixReviewTime": 1360000000}',
            '{"reviewerID": "U1", "asin": "B002", "overall": 3.0, "unixReviewTime": 1360000100}',
            '{"reviewerID": "U2", "asin": "B003", "overall": 4.0, "unixReviewTime": 1360000200}',
        ],
    )
    write_gzip_lines(
        folder / META_FILE,
        [
            "{'asin': 'B001', 'title': 'Rose Lip Balm', 'categories': [['Beauty', 'Skin Care', 'Lips']]}",
            "{'asin': 'B002', 'categories': [['Beauty', 'Hair Care']], 'price': 3.5}",
            *extra_meta,
        ],
    )


def test_beauty_items_read_asin_with_title_and_categories(tmp_path):
    _beauty_files(tmp_path)
    with pytest.warns(UserWarning, match=r"1 reviewed product\(s\) have no entry.*\['B003'\]"):
        raw = load_beauty(tmp_path)
    assert raw.interactions[USER].tolist() == ["U1", "U1", "U2"]
    assert raw.interactions[TIMESTAMP].dtype == "int64"
    items = raw.items.set_index(ITEM)
    assert items.loc["B001", TITLE] == "B001 (Rose Lip Balm)"
    assert items.loc["B001", ATTRIBUTES] == ["Skin Care", "Lips"]
    assert items.loc["B002", TITLE] == "B002"  # no title in the metadata
    assert items.loc["B003", TITLE] == "B003"  # no metadata at all
    assert items.loc["B003", ATTRIBUTES] == []


def test_beauty_meta_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    _beauty_files(tmp_path, extra_meta=[f"__import__('pathlib').Path('{marker}').touch()"])
    with pytest.raises(DataFormatError, match="line 3"):
        load_beauty(tmp_path)
    assert not marker.exists()


def test_beauty_malformed_review_is_reported(tmp_path):
    _beauty_files(tmp_path)
    with gzip.open(tmp_path / REVIEWS_FILE, "at") as handle:
        handle.write('{"reviewerID": "U3", "asin": "B001"\n')
    with pytest.raises(DataFormatError, match="line 4"):
        load_beauty(tmp_path)


# --- custom ----------------------------------------------------------------------------------


def _custom_files(
    folder,
    interactions="user_id\titem_id\ttimestamp\trating\nu1\t10\t5\t4\nu1\t2\t7\t3\n",
    items="item_id\ttitle\tgenres\n2\tTwo\tA|B\n10\tTen\t\n",
):
    (folder / "interactions.tsv").write_text(interactions)
    (folder / "items.tsv").write_text(items)


def test_custom_parses_both_files_with_numeric_ids(tmp_path):
    _custom_files(tmp_path)
    raw = load_custom(tmp_path)
    assert raw.interactions[ITEM].tolist() == [10, 2]
    assert raw.interactions[USER].tolist() == ["u1", "u1"]
    assert raw.interactions[RATING].tolist() == [4, 3]
    assert raw.items.set_index(ITEM)[ATTRIBUTES].to_dict() == {2: ["A", "B"], 10: []}


def test_custom_reads_gzipped_interactions(tmp_path):
    _custom_files(tmp_path)
    text = (tmp_path / "interactions.tsv").read_bytes()
    (tmp_path / "interactions.tsv").unlink()
    (tmp_path / "interactions.tsv.gz").write_bytes(gzip.compress(text))
    assert len(load_custom(tmp_path).interactions) == 2


@pytest.mark.parametrize(
    "interactions, message",
    [
        ("user\titem\ttimestamp\nu1\t2\t5\n", r"lacks the column\(s\) \['user_id', 'item_id'\]"),
        ("user_id\titem_id\ttimestamp\nu1\t2\tyesterday\n", "numeric timestamp.*line 2.*Fix these lines"),
        ("user_id\titem_id\ttimestamp\nu1\t\t5\n", "line 2"),
        ("user_id\titem_id\ttimestamp\nu1\t99\t5\n", "None of the 1 items.*has a title"),
    ],
)
def test_custom_bad_input_says_what_is_wrong(tmp_path, interactions, message):
    _custom_files(tmp_path, interactions=interactions)
    with pytest.raises(DataFormatError, match=f"(?s){message}"):
        load_custom(tmp_path)


def test_custom_missing_files_explain_the_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="interactions.tsv"):
        load_custom(tmp_path)

import numpy as np

from palr_utils.core.constants import ITEM, USER
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, generate_synthetic, write_synthetic

SMALL = SyntheticConfig(n_users=120, n_items=90)


def test_same_seed_same_data_other_seed_other_data():
    assert generate_synthetic(SMALL, seed=1) == generate_synthetic(SMALL, seed=1)
    assert generate_synthetic(SMALL, seed=1)[0] != generate_synthetic(SMALL, seed=2)[0]


def test_written_in_movielens_format_and_needs_cleaning(tmp_path):
    folder = write_synthetic(tmp_path / "synthetic", SMALL, seed=3)
    raw = load_movielens(folder, name="synthetic")
    assert raw.items[ITEM].nunique() == SMALL.n_items
    assert raw.users is not None and len(raw.users) == SMALL.n_users
    assert raw.interactions.duplicated([USER, ITEM]).any()  # de-duplication has work to do
    assert (raw.interactions.groupby(USER).size() < 5).any()  # so does the 5-core
    processed = preprocess(raw)
    assert 0 < processed.n_users < SMALL.n_users


def test_histories_have_sequential_structure(tmp_path):
    """Consecutive items continue a series or a follow-up far more often than chance."""
    ratings, movies, _ = generate_synthetic(SMALL, seed=4)
    by_user: dict[int, list[int]] = {}
    for user, item, _stars, _time in ratings:
        by_user.setdefault(user, []).append(item)
    pairs = [(a, b) for items in by_user.values() for a, b in zip(items, items[1:], strict=False)]
    sequel_rate = np.mean([b == a + 1 and movies[a][1].split(" (")[0] in movies[b - 1][1] for a, b in pairs])
    # item a+1 is a's sequel only within a series; by chance b == a + 1 would be about 1/90
    assert sequel_rate > 0.1

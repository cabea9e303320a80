import json
import math

import pandas as pd
import pytest

from palr_utils.core.io import (
    MissingArtifactError,
    StaleArtifactError,
    atomic_path,
    ensure_identity,
    read_metrics,
    require_artifacts,
    write_metrics,
    write_parquet,
)


def test_atomic_path_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_a_rewrite_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("complete")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_works_for_folders(tmp_path):
    with atomic_path(tmp_path / "folder") as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("a")
    assert (tmp_path / "folder" / "a.txt").read_text() == "a"


def test_metrics_round_trip_as_flat_json(tmp_path):
    import numpy as np

    path = write_metrics(tmp_path, "01_preprocessing", {"n_users": np.int64(3), "hr@10": 0.25})
    assert path == tmp_path / "metrics" / "01_preprocessing.json"
    assert json.loads(path.read_text()) == {"n_users": 3, "hr@10": 0.25}
    assert read_metrics(tmp_path, "01_preprocessing")["n_users"] == 3


@pytest.mark.parametrize("bad", [{"nested": {"a": 1}}, {"nan": math.nan}, {"list": [1, 2]}])
def test_metrics_refuse_what_is_not_a_flat_number(tmp_path, bad):
    with pytest.raises((TypeError, ValueError)):
        write_metrics(tmp_path, "x", bad)


def test_missing_inputs_name_the_notebook_to_run_first(tmp_path):
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "present.parquet")
    with pytest.raises(MissingArtifactError, match=r"absent\.parquet.*notebooks/01_preprocessing\.ipynb"):
        require_artifacts(tmp_path, ["present.parquet", "absent.parquet"], producer="01_preprocessing")
    with pytest.raises(FileNotFoundError, match="03_sasrec_retrieval"):
        read_metrics(tmp_path, "03_sasrec_retrieval")


def test_identity_is_recorded_then_checked(tmp_path):
    cache = tmp_path / "palr_v2.jsonl"
    record = tmp_path / "palr_v2.identity.json"
    ensure_identity(record, {"adapter": "abc", "n_candidates": (20,)}, cache)  # first run: recorded
    cache.write_text('{"user": 1}\n')
    ensure_identity(record, {"adapter": "abc", "n_candidates": (20,)}, cache)  # same settings: resumes
    with pytest.raises(StaleArtifactError, match=r"adapter differ.*Delete .*palr_v2.jsonl"):
        ensure_identity(record, {"adapter": "xyz", "n_candidates": (20,)}, cache)


def test_results_without_a_recorded_identity_are_refused(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    ensure_identity(folder / "identity.json", {"a": 1}, folder)  # an empty folder is a fresh start
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint-5").mkdir()
    with pytest.raises(StaleArtifactError, match="without a record"):
        ensure_identity(tmp_path / "old" / "identity.json", {"a": 1}, tmp_path / "old")

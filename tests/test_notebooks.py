"""Execute every notebook, in order, with papermill on the tiny preset.

The run happens once per test session (module fixture); each test then reads the
metrics file of one notebook. A notebook missing from ``notebooks/`` (renamed, deleted) fails the tests.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from palr_utils.core.constants import MANIFESTS_DIR, METRICS_DIR
from palr_utils.core.io import read_metrics
from palr_utils.core.paths import project_root
from palr_utils.course.lessons import solution_blocks
from palr_utils.course.notebook import DATA_SOURCE_FILE
from palr_utils.course.runner import NOTEBOOK_OUTPUTS, NOTEBOOKS, present_notebooks, run_notebooks
from palr_utils.finetune.runs import INSTRUCTION_RUNS, RANK_RUN, run_dir
from palr_utils.llm.prompts import CANDIDATE_LABELS
from palr_utils.presets import get_preset

pytestmark = pytest.mark.notebooks


def test_every_lesson_is_in_the_notebooks_folder():
    assert [path.stem for path in present_notebooks()] == list(NOTEBOOKS)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The artifact folder of one tiny run; its data folder is the sibling ``data``."""
    base = tmp_path_factory.mktemp("tiny")
    artifact_dir, data_dir = base / "artifacts", base / "data"
    artifact_dir.mkdir(), data_dir.mkdir()
    run_notebooks("tiny", data_dir=str(data_dir), artifact_dir=str(artifact_dir))
    return artifact_dir


def test_every_notebook_executed(tiny_run):
    for stem in NOTEBOOKS:
        assert (tiny_run / "executed" / f"{stem}.ipynb").exists()
        assert (tiny_run / "metrics" / f"{stem}.json").exists()


def test_executed_notebooks_carry_no_frozen_progress_bars_or_library_warnings(tiny_run):
    """What a student reads in an executed lesson: no bar stuck at "0%|", no deprecation notices of libraries."""
    noise = re.compile(r"\b0%\||FutureWarning|DeprecationWarning|Failed to load CPU gemm_4bit_forward")
    for stem in NOTEBOOKS:
        notebook = json.loads((tiny_run / "executed" / f"{stem}.ipynb").read_text())
        for index, cell in enumerate(notebook["cells"]):
            for output in cell.get("outputs", []):
                text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
                assert not noise.search(text), f"{stem}, cell {index}: {text[:300]}"


def test_01_preprocessing_counts_are_exact(tiny_run):
    # The synthetic data is deterministic for (profile, seed): these are its counts after the 5-core.
    assert read_metrics(tiny_run, "01_preprocessing") == {
        "n_users": 382,
        "n_items": 293,
        "n_interactions": 7820,
        "max_users": 0,
        "profile": "tiny",
        "overrides": "",
    }


def test_every_notebook_records_the_preset_and_its_overrides(tiny_run):
    for stem in NOTEBOOKS:
        metrics = read_metrics(tiny_run, stem)
        assert (metrics["profile"], metrics["overrides"]) == ("tiny", ""), stem


def test_overrides_reach_the_notebook_and_its_record(tmp_path):
    """OVERRIDES changes settings for one run: a seeded sample of 100 users and a 6-core, and the record says so."""
    run_notebooks("tiny", data_dir=str(tmp_path / "data"), artifact_dir=str(tmp_path / "out"),
                  notebooks=present_notebooks()[:1], overrides="max_users=100 min_interactions=6")  # fmt: skip
    metrics = read_metrics(tmp_path / "out", "01_preprocessing")
    assert metrics["overrides"] == "max_users=100 min_interactions=6" and metrics["max_users"] == 100
    assert metrics["n_users"] <= 100


def test_03_retrieval_metrics_and_sasrec_beats_popularity(tiny_run):
    metrics = read_metrics(tiny_run, "03_sasrec_retrieval")
    models = ("popularity", "bpr_mf", "ncf", "gru4rec", "caser", "sasrec")
    expected = {f"{m}_test_{k}" for m in models for k in ("hr@10", "ndcg@10")}
    expected |= {"sasrec_val_ndcg@10", "sasrec_recall@50", "sasrec_train_seconds"}
    assert expected <= set(metrics)
    for key in expected - {"sasrec_train_seconds"}:
        assert 0.0 <= metrics[key] <= 1.0, key
    # The synthetic data has sequential structure that popularity cannot see.
    assert metrics["sasrec_test_ndcg@10"] > 2 * metrics["popularity_test_ndcg@10"]
    assert metrics["sasrec_recall@50"] >= metrics["sasrec_test_hr@10"]
    assert (tiny_run / "candidates.parquet").exists() and (tiny_run / "rank_candidates.parquet").exists()
    for key in ("one_step_back_recall@rerank", "own_training_answer_rate@rerank"):
        assert 0.0 <= metrics[key] <= 1.0, key
    for model in (*models[1:], "sasrec_one_step_back"):  # how every training ended is recorded, and printed
        assert metrics[f"{model}_stop_reason"] in ("patience", "budget", "epochs"), model
        assert 1 <= metrics[f"{model}_best_epoch"] <= metrics[f"{model}_epochs_run"], model
    executed = (tiny_run / "executed" / "03_sasrec_retrieval.ipynb").read_text()
    assert "SASRec: stopped " in executed or "SASRec: ran all" in executed
    # tiny, like cpu on MovieLens-1M, continues SASRec from the twin: the twin was trained first, once
    assert metrics["sasrec_from_twin"] is True and metrics["sasrec_one_step_back_train_seconds"] > 0
    assert "SASRec one step back (the starting point): " in executed
    # which settings this data got, and why: the tiny preset has no rules, and says so
    assert metrics["settings_rule"] == "the preset's own" and "no rules" in metrics["settings_reason"]
    assert "settings: the tiny preset's own settings" in executed


def test_custom_data_the_preset_does_not_know_gets_settings_by_its_statistics(tmp_path):
    """Notebook 01 on a custom folder of short histories (300 users, 7 purchases each) records the statistics
    by which the cpu preset gives it the short-history settings (notebook 03 prints and records the choice)."""
    folder = tmp_path / "shop"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = [f"{u}\t{i}\t{t}" for u in range(300) for t, i in enumerate(rng.choice(80, 7, replace=False))]
    (folder / "interactions.tsv").write_text("user_id\titem_id\ttimestamp\n" + "\n".join(rows) + "\n")
    (folder / "items.tsv").write_text("item_id\ttitle\n" + "".join(f"{i}\tProduct {i}\n" for i in range(80)))
    out = tmp_path / "out"
    run_notebooks("cpu", "custom", str(folder), str(out), notebooks=present_notebooks()[:1])
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["paper_dataset"] is None and info["statistics"]["median_history"] == 7
    preset, choice = get_preset("cpu").fit_to_data(info)
    assert choice.rule == "short histories" and preset.sasrec.max_len == 50 and preset.sasrec.dropout == 0.5
    assert preset.sasrec_training.max_minutes == preset.min_budget_minutes  # 2,100 interactions: the floor


def test_02_profiles_written_by_the_real_model(tiny_run):
    from palr_utils.core.sampling import evaluation_users, finetune_users
    from palr_utils.presets import PRESETS
    from palr_utils.profiles import read_profiles

    metrics = read_metrics(tiny_run, "02_user_profiles")
    n_users = read_metrics(tiny_run, "01_preprocessing")["n_users"]
    tiny = PRESETS["tiny"]
    tuned = set(finetune_users(n_users, tiny.finetune_fraction, 42))
    evaluated = set(evaluation_users(n_users, tiny.n_eval_users, 42))
    assert metrics["n_profiles"] == len(tuned) + len(evaluated)
    profiles = read_profiles(tiny_run / "profiles.jsonl")  # evaluation users: from the whole training history
    prefix_profiles = read_profiles(tiny_run / "profiles_prefix.jsonl")  # fine-tuning users: from the prefix
    assert set(profiles["user"]) == evaluated and set(prefix_profiles["user"]) == tuned
    every = list(profiles["keywords"]) + list(prefix_profiles["keywords"])
    assert metrics["empty_profile_rate"] == pytest.approx(sum(len(k) == 0 for k in every) / len(every))
    assert metrics["empty_profile_rate"] < 0.5  # most outputs yield keywords
    assert metrics["seconds_per_profile"] > 0


def test_04_finetuning_lowers_the_loss(tiny_run):
    metrics = read_metrics(tiny_run, "04_finetune_palr")
    assert metrics["n_train_examples"] > 0
    assert metrics["v2_train_loss_last"] < metrics["v2_train_loss_first"]
    assert metrics["v1_train_loss_last"] < metrics["v1_train_loss_first"]
    assert metrics["n_rank_examples"] > 0
    # PALR-rank's 8 steps on tiny's invented titles have nothing to learn: its listwise loss stays near chance,
    # ln K, and whether the first or the last steps score lower is a coin toss. That it learns where there is
    # something to learn is test_finetune's test_the_listwise_ranking_trainer_learns_to_put_the_right_candidate_first.
    chance = math.log(get_preset("tiny").rerank_candidates)
    for end in ("first", "last"):
        assert abs(metrics[f"rank_train_loss_{end}"] - chance) < 1.0
    for run in ("palr_v1", "palr_v2", "palr_rank"):
        assert (tiny_run / "finetune" / run / "adapter" / "adapter_config.json").exists()


def test_the_finetune_command_line_trains_the_adapters_notebook_04_trains(tiny_run):
    """The command line (for several GPUs) reads the same table of runs, settings and folders as notebook 04:
    on the notebook's finished run it finds every adapter finished, and trains nothing."""
    adapters = [run_dir(tiny_run, name) / "adapter" / "adapter_model.safetensors" for name in (*INSTRUCTION_RUNS,
                RANK_RUN)]  # fmt: skip
    before = [path.stat().st_mtime_ns for path in adapters]
    done = subprocess.run([sys.executable, "-m", "palr_utils.finetune.cli", "--profile", "tiny", "--artifact-dir",
                           str(tiny_run)], cwd=project_root(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("adapter in") == 3, done.stdout
    assert [path.stat().st_mtime_ns for path in adapters] == before  # reused, not retrained


def test_every_file_a_run_writes_belongs_to_a_notebook(tiny_run):
    """The table a benchmark variant reuses outputs by: a new output left out of it would not be reused."""
    bookkeeping = {DATA_SOURCE_FILE, METRICS_DIR, MANIFESTS_DIR, "executed"}
    known = {path for outputs in NOTEBOOK_OUTPUTS.values() for path in outputs} | bookkeeping
    assert {path.name for path in tiny_run.iterdir()} == known


def test_a_benchmark_variant_starts_from_the_earlier_notebooks_of_a_run_and_records_its_overrides(tiny_run, tmp_path):
    variant, out = tmp_path / "variant", tmp_path / "variant.json"
    overrides = "finetune.max_steps=2 rank_finetune.max_steps=2 rank_residual=true rank_prefixes=2"
    command = [sys.executable, "benchmarks/pipeline_ml1m.py", "--profile", "tiny", "--dataset", "synthetic",
               "--data-dir", str(tiny_run.parent / "data"), "--artifact-dir", str(variant), "--out", str(out),
               "--reuse-from", str(tiny_run), "--only", "04_finetune_palr",
               "--overrides", overrides]  # fmt: skip
    before = (tiny_run / "finetune" / "palr_rank" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    done = subprocess.run(command, cwd=project_root(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["reused"]["notebooks"] == list(NOTEBOOKS[:3]) and list(result["notebooks"]) == [NOTEBOOKS[3]]
    metrics, original = result["notebooks"][NOTEBOOKS[3]]["metrics"], read_metrics(tiny_run, NOTEBOOKS[3])
    assert metrics["overrides"] == result["overrides"] == overrides
    assert metrics["rank_residual"] is True and original["rank_residual"] is False  # the lever, in the record
    executed = (variant / "executed" / f"{NOTEBOOKS[3]}.ipynb").read_text()
    assert "the retriever's own" in executed  # the residual loss is read against the retriever's, not ln K
    # two prefixes per user: more examples from notebook 03's export, without notebook 03 running again
    assert metrics["rank_prefixes"] == 2 and metrics["n_rank_examples"] > original["n_rank_examples"]
    assert metrics["rank_epochs_done"] < original["rank_epochs_done"] / 4  # 2 steps, not 8, over more examples
    # notebook 03's outputs are the run's own files (hard links), and the run's adapters are untouched
    assert (variant / "candidates.parquet").stat().st_ino == (tiny_run / "candidates.parquet").stat().st_ino
    assert (tiny_run / "finetune" / "palr_rank" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == before


def test_05_evaluation_reports_every_method_on_the_same_users(tiny_run):
    from palr_utils.presets import PRESETS

    metrics = read_metrics(tiny_run, "05_evaluation")
    assert metrics["n_eval_users"] == PRESETS["tiny"].n_eval_users
    methods = ("sasrec", "palr_v1", "palr_v2", "palr_v2_fast", "palr_v2_fast_calibrated", "palr_rank", "palr_fused")
    for method in methods:
        for key in ("hr@10", "ndcg@10"):
            assert 0.0 <= metrics[f"{method}_test_{key}"] <= 1.0
        assert metrics[f"{method}_test_ndcg@10"] <= metrics[f"{method}_test_hr@10"]
    for method in (*methods[1:], "shuffled"):  # every method's interval of its difference to SASRec
        low, high = metrics[f"{method}_ndcg@10_delta_ci_low"], metrics[f"{method}_ndcg@10_delta_ci_high"]
        assert -1.0 <= low <= high <= 1.0
    # SASRec on the users generation ranked: the bar for PALR_v1 and PALR_v2's rows
    assert 0.0 <= metrics["sasrec_generation_users_test_ndcg@10"] <= metrics["sasrec_generation_users_test_hr@10"] <= 1
    assert metrics["palr_fused_weight"] in get_preset("tiny").fusion_weights
    if metrics["palr_fused_weight"] == 0.0:  # validation gave the LLM no say: the fused list is SASRec's
        assert metrics["palr_fused_test_ndcg@10"] == metrics["sasrec_test_ndcg@10"]
    for key in ("palr_v2_parse_rate", "palr_v2_hallucination_rate", "palr_v2_seen_rate", "palr_v1_seen_rate"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["palr_v2_seconds_per_user"] > 0 and metrics["palr_v2_fast_seconds_per_user"] > 0
    # the lesson ends with its verdict, computed: a table and the sentence that answers its title's question
    assert metrics["verdict"].startswith(("Yes: ", "No: ", "Unclear: "))
    notebook = json.loads((tiny_run / "executed" / "05_evaluation.ipynb").read_text())
    printed = "".join("".join(out.get("text", "")) for cell in notebook["cells"] for out in cell.get("outputs", []))
    assert metrics["verdict"] in printed and "validation chose weight" in printed  # and the fusion sentence
    import pandas as pd

    records = pd.read_json(tiny_run / "rerank" / "palr_v2.jsonl", lines=True)
    assert len(records) == metrics["n_generation_users"] == get_preset("tiny").n_generation_users
    assert (records["final"].map(len) == 10).all()  # back-filled to 10 for every user
    # generation was made to start with one of the candidates' letters and its period ("I'm sorry" is not "I.")
    letters = set(CANDIDATE_LABELS[: get_preset("tiny").rerank_candidates])
    assert records["raw_output"].str.lstrip().map(lambda text: text[:1] in letters and text[1:2] == ".").all()


SOLUTIONS = [(path.name, number) for path in sorted((project_root() / "exercises" / "solutions").glob("*.md"))
             for number in range(len(solution_blocks(path)))]  # fmt: skip


@pytest.mark.parametrize("name, number", SOLUTIONS)
def test_every_exercise_solution_runs_on_the_tiny_run(tiny_run, name, number):
    """Each worked solution, as a student would paste it, against the run the tests just executed."""
    code = solution_blocks(project_root() / "exercises" / "solutions" / name)[number]
    code = re.sub(r'^ARTIFACT_DIR = ".*"', f'ARTIFACT_DIR = "{tiny_run}"', code, flags=re.M)
    code = re.sub(r'^DATA_DIR = ".*"', f'DATA_DIR = "{tiny_run.parent / "data"}"', code, flags=re.M)
    environment = {**os.environ, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=project_root(), env=environment, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{name}, block {number + 1}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"

"""The cpu preset's settings for data it does not recognise, chosen by rules on the data's statistics."""

from __future__ import annotations

import pytest

from palr_utils.data import data_statistics, preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.presets import SHORT_HISTORY_SETTINGS, resolve_config
from palr_utils.rules import fit_window, scale_budget

# notebook 01's statistics of the two data sets the rules were written from (benchmarks/results/
# settings_rules_cpu.json records those of the variants)
ML_1M = {"n_users": 6040, "n_items": 3416, "n_interactions": 999_611, "median_history": 96.0, "p90_history": 400.0,
         "median_interactions_per_item": 146.0, "density": 0.0485}  # fmt: skip
BEAUTY = {"n_users": 22363, "n_items": 12101, "n_interactions": 198_502, "median_history": 6.0, "p90_history": 14.0,
          "median_interactions_per_item": 9.0, "density": 0.00073}  # fmt: skip
HALF_BEAUTY = {"n_users": 6322, "n_items": 4163, "n_interactions": 57_004, "median_history": 6.0,
               "p90_history": 16.0, "median_interactions_per_item": 8.0, "density": 0.0022}  # fmt: skip


def _unknown(statistics: dict) -> dict:
    return {"paper_dataset": None, "statistics": statistics}


@pytest.fixture(scope="module")
def cpu():
    return resolve_config("cpu", seed=7).preset


@pytest.mark.parametrize(("name", "statistics"), [("beauty", BEAUTY), ("ml-1m", ML_1M)])
def test_the_rules_give_each_data_set_they_were_written_from_its_own_settings(cpu, name, statistics):
    by_name = cpu.for_data({"paper_dataset": name})
    by_rule, choice = cpu.fit_to_data(_unknown(statistics))
    assert choice.anchor == name and choice.budget_scale == 1.0
    for field in ("sasrec", "sasrec_training", "baseline_training", "baseline_training_by_model", "baseline_max_len"):
        assert getattr(by_rule, field) == getattr(by_name, field), field


def test_short_sparse_histories_get_the_beauty_settings_with_budgets_scaled_to_the_size(cpu):
    fitted, choice = cpu.fit_to_data(_unknown(HALF_BEAUTY))
    assert choice.rule == "short histories" and choice.window == 50
    assert fitted.sasrec == SHORT_HISTORY_SETTINGS["sasrec"]
    assert fitted.sasrec_training.patience == 8
    assert fitted.sasrec_training.seed == 7  # the run's seed, not the settings' default
    # 0.29 of Beauty's interactions: 15 minutes would be 4.3, and a budget is never below 5
    assert fitted.sasrec_training.max_minutes == 5.0
    assert fitted.baseline_settings("ncf").max_minutes == 5.0
    assert "median history 6 (below 30): short histories" in choice.reason and "29% of Beauty's" in choice.reason
    assert "at least 5 minutes (SASRec: 5 minutes)" in choice.reason
    record = choice.record()
    assert record["settings_rule"] == "short histories" and record["settings_window"] == 50


def test_long_histories_keep_the_preset_settings_and_a_window_that_holds_most_of_them(cpu):
    statistics = ML_1M | {"n_interactions": 300_000, "median_history": 60.0, "p90_history": 90.0}
    fitted, choice = cpu.fit_to_data(_unknown(statistics))
    assert choice.rule == "the preset's own" and choice.anchor == "ml-1m"
    assert fitted.sasrec.hidden_size == cpu.sasrec.hidden_size and fitted.sasrec.max_len == 100
    assert fitted.baseline_max_len == 100
    assert fitted.sasrec_training.max_minutes == pytest.approx(28 * 0.3, abs=0.1)
    assert "not below 30), so the preset's own settings (chosen on MovieLens-1M)" in choice.reason


def test_overrides_still_win_over_the_rules():
    preset = resolve_config("cpu", overrides="sasrec.max_len=20 sasrec_training.max_minutes=2").preset
    fitted, choice = preset.fit_to_data(_unknown(HALF_BEAUTY))
    assert fitted.sasrec.max_len == 20 and fitted.sasrec_training.max_minutes == 2
    assert fitted.sasrec.dropout == 0.5  # the rule's other settings stay
    # the reason and the record describe what the run uses
    assert "a window of 20 items" in choice.reason and "SASRec: 2 minutes" in choice.reason
    assert choice.window == 20 and "OVERRIDES: sasrec.max_len=20" in choice.reason


def test_a_preset_without_rules_keeps_its_settings_and_says_so():
    preset = resolve_config("tiny").preset
    fitted, choice = preset.fit_to_data(_unknown(HALF_BEAUTY))
    assert fitted == preset and "no rules" in choice.reason


def test_data_described_by_an_older_notebook_01_is_asked_to_run_it_again(cpu):
    with pytest.raises(ValueError, match="run notebook 01 again"):
        cpu.fit_to_data({"paper_dataset": None})
    with pytest.raises(ValueError, match="no p90_history .* run notebook 01 again"):
        cpu.fit_to_data(_unknown({"n_interactions": 10, "median_history": 5.0}))


def test_a_preset_without_settings_for_a_recognised_data_set_does_not_claim_any():
    beauty = {"paper_dataset": "beauty"}
    assert "the tiny preset's own settings" in resolve_config("tiny").preset.fit_to_data(beauty)[1].reason
    assert "keeps for it" in resolve_config("cpu").preset.fit_to_data(beauty)[1].reason


def test_a_sample_of_a_paper_data_set_is_other_data():
    from palr_utils.core.paper import paper_dataset

    assert paper_dataset("ml-1m", 6040, 3416, 999_611) == paper_dataset("custom", 6040, 3416, 999_611) == "ml-1m"
    assert paper_dataset("beauty", 6322, 4163, 57_004) is None


def test_window_and_budget_rules():
    assert [fit_window(p90, (50, 100, 200)) for p90 in (14, 50, 51, 400)] == [50, 50, 100, 200]
    assert scale_budget(None, 0.1, 5) is None
    assert scale_budget(28, 0.5, 5) == 14 and scale_budget(28, 0.01, 5) == 5 and scale_budget(3, 0.5, 5) == 3


def test_notebook_01_statistics_describe_the_histories(tmp_path):
    folder = write_synthetic(tmp_path / "d", SyntheticConfig(n_users=40, n_items=60), seed=0)
    processed = preprocess(load_movielens(folder))
    statistics = data_statistics(processed.interactions, processed.n_users, processed.n_items)
    lengths = processed.interactions.groupby("user").size()
    assert statistics["median_history"] == lengths.median() and statistics["n_users"] == processed.n_users
    assert statistics["density"] == len(processed.interactions) / (processed.n_users * processed.n_items)


def test_generating_methods_are_compared_with_sasrec_on_their_own_users():
    from palr_utils.evaluation.methods import METHOD_NAMES, SASREC_ON_GENERATION_USERS, same_users_baseline

    assert same_users_baseline("palr_v2") == same_users_baseline("palr_v1") == SASREC_ON_GENERATION_USERS
    assert same_users_baseline("palr_fused") == "sasrec" and set(METHOD_NAMES) >= {"palr_v1", "palr_fused"}
    assert same_users_baseline(SASREC_ON_GENERATION_USERS) == SASREC_ON_GENERATION_USERS  # its own row: 0

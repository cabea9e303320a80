"""The reading functions: every branch on constructed numbers, so that a lesson's computed sentence is right
whichever way a run turns out."""

from __future__ import annotations

import pandas as pd
import pytest

from palr_utils.course import readings


@pytest.mark.parametrize(
    "first, last, expected",
    [(1.070, 0.980, "fell from 1.070 to 0.980 (-8%)"), (1.070, 1.091, "rose from 1.070 to 1.091 (+2%)"),
     (2.98, 2.979, "stayed about the same")],
)  # fmt: skip
def test_trend_says_which_way_a_number_went(first, last, expected):
    assert expected in readings.trend("PALR_v2's loss", first, last)


@pytest.mark.parametrize(
    "value, reference, expected",
    [(0.528, 0.132, "4.0 times as often as"), (0.504, 0.436, "16% more often than"),
     (0.44, 0.436, "about as often as"), (0.3, 0.436, "31% less often than")],
)  # fmt: skip
def test_how_much_more_often(value, reference, expected):
    assert expected in readings.how_much_more("it finds its answers", value, reference, "test items")


def test_a_listwise_loss_against_chance():
    assert "at chance" in readings.below_chance(2.98, 20)
    assert "8% below chance" in readings.below_chance(2.756, 20)
    assert "above chance" in readings.below_chance(3.3, 20)
    assert "adds nothing" in readings.below_retriever(2.01, 2.0)
    assert "10% below the retriever's own" in readings.below_retriever(1.8, 2.0)
    assert "above the retriever's own" in readings.below_retriever(2.4, 2.0)


@pytest.mark.parametrize(
    "reason, expected",
    [("patience", "stopped early at epoch 34 of 200, after 10 evaluations"),
     ("budget", "stopped by its 28-minute budget at epoch 34 of 200"),
     ("epochs", "ran all 200 epochs"), (None, "has not finished")],
)  # fmt: skip
def test_training_end_names_what_stopped_it(reason, expected):
    assert expected in readings.training_end("SASRec", reason, 34, 200, 24, 10, 28, 1700)


def test_a_schedule_fitted_to_its_budget_says_how_many_epochs_it_planned():
    fitted = readings.training_end("SASRec", "epochs", 24, 24, 23, 10, 20, 1190, asked=35)
    assert "ran all 24 epochs of its schedule (35 asked for" in fitted and "20-minute budget" in fitted
    assert "ran all 35 epochs;" in readings.training_end("SASRec", "epochs", 35, 35, 30, 10, 28, 1500, asked=35)


def test_a_budget_stop_right_after_the_best_epoch_says_it_was_still_improving():
    assert "still improving" in readings.training_end("GRU4Rec", "budget", 10, 100, 10, 3, 5, 303)
    stalled = readings.training_end("GRU4Rec", "budget", 10, 100, 4, 3, 5, 303)
    assert "no better since epoch 4" in stalled and "still improving" not in stalled
    assert "at its last epoch, 10" in readings.training_end("BPR-MF", "patience", 10, 10, 4, 3, None, 30)
    assert "2.50 epochs" in readings.finetune_end("PALR_v2", 2.5, 3.0, -1, 600, 44, 2700)


def test_finetune_end_says_whether_it_trained_what_was_asked():
    assert "trained its 1 epoch" in readings.finetune_end("PALR_v2", 1.0, 1.0, -1, 600, 44, 2545)
    assert "budget after 17% of an epoch" in readings.finetune_end("PALR_v2", 0.17, 1.0, -1, 150, 44, 2643)
    assert "trained its 8 steps" in readings.finetune_end("PALR_v1", 0.5, 1.0, 8, 8, None, 30)
    assert "trained 5 steps" in readings.finetune_end("PALR_v1", 0.3, 1.0, 8, 5, None, 30)


@pytest.mark.parametrize(
    "low, high, weight, word",
    [(0.001, 0.0077, 0.5, "better"), (-0.07, -0.046, None, "worse"), (-0.01, 0.02, None, "unclear"),
     (0.0, 0.0, 0.0, "same (weight 0)"), (0.0, 0.0, None, "same")],
)  # fmt: skip
def test_interval_verdicts(low, high, weight, word):
    assert readings.interval_verdict(low, high, weight) == word


def _metrics(fused_low, fused_high, weight, fused=0.0617, rank_low=-0.071, rank_high=-0.046):
    return {
        "sasrec_test_ndcg@10": 0.0572, "sasrec_generation_users_test_ndcg@10": 0.0512,
        "palr_rank_test_ndcg@10": 0.0420, "palr_rank_ndcg@10_delta_ci_low": rank_low,
        "palr_rank_ndcg@10_delta_ci_high": rank_high,
        "palr_fused_test_ndcg@10": fused, "palr_fused_ndcg@10_delta_ci_low": fused_low,
        "palr_fused_ndcg@10_delta_ci_high": fused_high, "palr_fused_weight": weight,
        "palr_v2_test_ndcg@10": 0.0386, "palr_v2_ndcg@10_delta_ci_low": -0.02, "palr_v2_ndcg@10_delta_ci_high": -0.01,
    }  # fmt: skip


METHODS = {"palr_rank": "PALR-rank", "palr_fused": "SASRec + PALR-rank", "palr_v2": "PALR_v2", "absent": "nothing"}


def test_the_verdict_table_compares_each_method_with_sasrec_on_its_own_users():
    table = readings.verdict_table(_metrics(0.001, 0.0077, 0.5), METHODS,
                                   baselines={"palr_v2": "sasrec_generation_users"})  # fmt: skip
    assert list(table.index) == ["PALR-rank", "SASRec + PALR-rank", "PALR_v2"]  # a method not run is left out
    assert table.loc["PALR_v2", "sasrec_same_users"] == 0.0512
    assert table.loc["SASRec + PALR-rank", "difference"] == pytest.approx(0.0045)
    assert list(table["verdict"]) == ["worse", "better", "worse"]


def test_the_verdict_sentence_for_a_gain():
    sentence = readings.verdict_sentence(readings.verdict_table(_metrics(0.001, 0.0077, 0.5), METHODS))
    assert sentence.startswith("Yes: SASRec + PALR-rank beats SASRec") and "+7.9%" in sentence
    assert "[+0.0010, +0.0077]" in sentence


def test_the_verdict_sentence_when_validation_chose_weight_zero():
    table = readings.verdict_table(_metrics(0.0, 0.0, 0.0, fused=0.0572), METHODS)
    sentence = readings.verdict_sentence(table)
    assert sentence.startswith("No: the closest LLM-based ranking, SASRec + PALR-rank, is") and "no weight" in sentence


def test_the_verdict_sentence_when_a_weight_was_chosen_but_no_test_list_changed():
    table = readings.verdict_table(_metrics(0.0, 0.0, 0.1, fused=0.0572), METHODS)
    assert "moved no held-out item" in readings.verdict_sentence(table)


def test_the_verdict_sentence_when_the_interval_crosses_zero():
    table = readings.verdict_table(_metrics(-0.002, 0.004, 0.25, fused=0.0582), METHODS)
    assert readings.verdict_sentence(table).startswith("Unclear:")


def test_the_verdict_sentence_when_the_closest_is_below_but_another_is_unclear():
    metrics = _metrics(-0.004, -0.001, 0.25, fused=0.0550, rank_low=-0.06, rank_high=0.01)
    sentence = readings.verdict_sentence(readings.verdict_table(metrics, METHODS))
    assert sentence.startswith("No: no LLM-based ranking is shown to beat SASRec")


def test_the_verdict_sentence_when_every_method_is_below():
    table = readings.verdict_table(_metrics(-0.004, -0.001, 0.25, fused=0.0550), METHODS)
    assert readings.verdict_sentence(table).startswith("No: every LLM-based ranking is below SASRec")


def test_fusion_sentence():
    assert "no weight helped" in readings.fusion_sentence(0.0, {0.0: 0.07, 0.5: 0.069})
    chosen = readings.fusion_sentence(0.5, pd.DataFrame({"weight": [0.0, 0.5], "ndcg@10": [0.07, 0.075]}))
    assert "weight 0.5: validation NDCG@10 0.0750 against 0.0700" in chosen


def test_where_it_helps():
    groups = pd.DataFrame({"sasrec": [0.05, 0.06, 0.07], "fused": [0.055, 0.062, 0.0764]},
                          index=["short", "medium", "long"])  # fmt: skip
    assert "best for long (a gain of +0.0064), worst for medium (a gain of +0.0020)" in readings.where_it_helps(
        groups, "fused"
    )
    losses = groups.assign(fused=[0.04, 0.06, 0.0764])
    assert "worst for short (a loss of -0.0100)" in readings.where_it_helps(losses, "fused")
    assert "equals sasrec in every group" in readings.where_it_helps(groups.assign(fused=groups["sasrec"]), "fused")


def test_describe_lengths_and_counts():
    lengths = pd.Series([3, 5, 6, 8, 300])
    text = readings.describe_lengths(lengths, n_history=5, window=200)
    assert "median history 6 interactions, longest 300: 60% of users have more than the 5" in text
    assert "20% more than SASRec's window" in text
    assert readings.count_sentence(0, 100, "duplicates", "no duplicates") == "no duplicates"
    assert readings.count_sentence(3, 100, "duplicates", "none") == "3 duplicates (3.0% of 100)"


def test_trend_from_zero():
    assert "rose" in readings.trend("x", 0.0, 1.0) and "about the same" in readings.trend("x", 0.0, 0.0)


def test_cascade_sentences():
    assert "nothing to remove" in readings.cascade_sentence(5, (0, 0), (0, 0))
    assert "no cascade" in readings.cascade_sentence(5, (0, 290), (0, 290))
    assert "2 users and 3 items more than a single pass" in readings.cascade_sentence(2, (1, 2), (3, 5))


def test_table1_sentences():
    assert "exactly PALR's Table 1 for ml-1m" in readings.table1_sentence((6040, 3416, 999611), (6040, 3416, 999611),
                                                                          "ml-1m")  # fmt: skip
    assert "Table 1 has 6,040 / 3,416 / 999,611" in readings.table1_sentence((6040, 3416, 9), (6040, 3416, 999611),
                                                                             "ml-1m")  # fmt: skip
    assert "not one of the paper's" in readings.table1_sentence((40, 30, 900), None, None)


def test_retriever_end_reads_the_model():
    from types import SimpleNamespace

    model = SimpleNamespace(stop_reason="patience", epochs_run=12, best_epoch=6, train_seconds=60.0)
    training = SimpleNamespace(epochs=60, patience=3, max_minutes=None)
    assert "stopped early at epoch 12 of 60, after 3 evaluations" in readings.retriever_end("BPR-MF", model, training)


def test_finetune_plan_counts_the_steps_an_epoch_takes_or_the_steps_asked():
    small = readings.finetune_plan("PALR_v2", 300, 1.0, -1, 8, 44)
    assert "300 examples, 1 epoch in batches of 8: 38 optimiser steps (at most 44 minutes)" in small
    fixed = readings.finetune_plan("x", 90, 1, 5, 4, None)
    assert "90 examples, a limit of 5 optimiser steps in batches of 4 (about 0.22 epochs; no time limit)" in fixed


def test_loss_trend_says_which_steps_it_averaged():
    assert "(the first and the last logged step) fell from 3.000 to 1.000" in readings.loss_trend(
        pd.DataFrame({"loss": [3.0, 2.0, 1.0]})
    )
    long = readings.loss_trend(pd.DataFrame({"loss": [4.0] * 10 + [3.0] * 80 + [2.0] * 10}), "PALR_v2's loss")
    assert long.startswith("PALR_v2's loss (mean of the first and the last 10 of 100 logged steps) fell from 4.000")


def test_loss_ends_average_the_first_and_last_tenth_of_the_steps():
    history = pd.DataFrame({"loss": [4.0] * 10 + [3.0] * 80 + [2.0] * 10})
    assert readings.loss_ends(history) == (4.0, 2.0)
    assert readings.loss_ends(pd.DataFrame({"loss": [3.0, 1.0]})) == (3.0, 1.0)  # fewer than ten: one step each


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({"sasrec": 0.18, "caser": 0.12, "popularity": 0.05, "bpr_mf": 0.03}, "sasrec (test NDCG@10 0.1800) is above"),
        ({"gru4rec": 0.01, "ncf": 0.02}, "is below the order-blind ncf (0.0200)"),
        ({"sasrec": 0.02, "popularity": 0.02}, "level with"),
        ({"sasrec": 0.18}, "cannot be compared"),
    ],
)
def test_order_sentence_compares_the_best_of_each_kind(scores, expected):
    assert expected in readings.order_sentence(scores)


def test_order_sentence_chooses_the_best_of_each_kind_on_validation():
    test = {"sasrec": 0.50, "ncf": 0.063, "bpr_mf": 0.059}
    sentence = readings.order_sentence(test, {"sasrec": 0.46, "ncf": 0.092, "bpr_mf": 0.099})
    assert "the order-blind bpr_mf (0.0590) (each the best of its kind on validation)" in sentence


def test_popularity_share_against_an_even_spread():
    text = readings.popularity_share(pd.Series([90, 5, 3, 1, 1, 0, 0, 0, 0, 0]))
    assert "1 of 10" in text and "receive 90%" in text and "would give them 10%" in text

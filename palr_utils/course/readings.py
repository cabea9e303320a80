"""Readings of a run's results, in words computed from its own numbers.

The same lesson runs on synthetic data, MovieLens-1M, Amazon Beauty and a user's own data, with different
outcomes, so no sentence about an outcome can be written in advance. A lesson's markdown explains the idea and
what to look for; these functions say what happened (every branch has a unit test in tests/test_readings.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

FLAT = 0.01  # a relative change smaller than this reads as "about the same"


def signed(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}"


def trend(what: str, first: float, last: float, digits: int = 3) -> str:
    """'PALR_v2's loss fell from 1.070 to 0.980 (-8%)' / 'rose' / 'stayed about the same'."""
    if first == last or (first and abs(last - first) / abs(first) < FLAT):
        return f"{what} stayed about the same ({first:.{digits}f} -> {last:.{digits}f})"
    verb = "fell" if last < first else "rose"
    change = f" ({(last - first) / abs(first):+.0%})" if first else ""
    return f"{what} {verb} from {first:.{digits}f} to {last:.{digits}f}{change}"


def how_much_more(what: str, value: float, reference: float, than: str) -> str:
    """'4.0 times as often' / '16% more often' / 'about as often' / '30% less often', of two rates."""
    if reference <= 0:
        return f"{what}: {value:.3f}, {than}: {reference:.3f}"
    ratio = value / reference
    if abs(ratio - 1) < 0.05:
        words = "about as often as"
    elif ratio >= 2:
        words = f"{ratio:.1f} times as often as"
    elif ratio > 1:
        words = f"{ratio - 1:.0%} more often than"
    else:
        words = f"{1 - ratio:.0%} less often than"
    return f"{what} {words} {than} ({value:.3f} against {reference:.3f})"


def below_chance(loss: float, n_candidates: int) -> str:
    """Where a listwise loss ends against a uniform guess over ``n_candidates`` (ln K)."""
    chance = math.log(n_candidates)
    gap = (chance - loss) / chance
    if abs(gap) < FLAT:
        return f"the loss ends at chance ({loss:.3f}; ln {n_candidates} = {chance:.3f}): nothing learned to rank"
    where = "below" if gap > 0 else "above"
    return f"the loss ends {abs(gap):.0%} {where} chance ({loss:.3f}; ln {n_candidates} = {chance:.3f})"


def below_retriever(loss: float, retriever_loss: float) -> str:
    """Where a residual listwise loss ends against the retriever's own (its prior alone, the LLM's scores 0)."""
    gap = (retriever_loss - loss) / retriever_loss
    if abs(gap) < FLAT:
        return (f"the loss ends at the retriever's own ({loss:.3f} against {retriever_loss:.3f}): the LLM adds "
                "nothing to its order yet")
    where = "below" if gap > 0 else "above"
    return f"the loss ends {abs(gap):.0%} {where} the retriever's own ({loss:.3f} against {retriever_loss:.3f})"


STOP_REASONS = ("patience", "budget", "epochs")


def training_end(name: str, stop_reason: str | None, epochs_run: int, epochs: int, best_epoch: int, patience: int,
                 max_minutes: float | None, seconds: float, asked: int | None = None) -> str:  # fmt: skip
    """How one retriever's training ended: early stopping, its time budget, or all its epochs. ``asked``: the
    config's epochs when its schedule was fitted to the budget and planned fewer (``epochs``)."""
    took = f"{seconds / 60:.1f} min"
    if stop_reason == "epochs" and asked and asked > epochs:
        return (f"{name}: ran all {epochs} epochs of its schedule ({asked} asked for, {epochs} what its "
                f"{max_minutes:g}-minute budget holds at the pace of its first epochs); best epoch {best_epoch} "
                f"({took})")  # fmt: skip
    if stop_reason == "patience":
        when = f"early at epoch {epochs_run} of {epochs}" if epochs_run < epochs else f"at its last epoch, {epochs}"
        return (f"{name}: stopped {when}, after {patience} evaluations without a better validation NDCG@10; best "
                f"epoch {best_epoch} ({took})")  # fmt: skip
    if stop_reason == "budget":
        if best_epoch >= epochs_run - 1:
            how = "still improving: more time might help"
        else:
            how = f"no better since epoch {best_epoch}"
        return (f"{name}: stopped by its {max_minutes:g}-minute budget at epoch {epochs_run} of {epochs}, best "
                f"epoch {best_epoch}, {how}")  # fmt: skip
    if stop_reason == "epochs":
        return f"{name}: ran all {epochs} epochs; best epoch {best_epoch} ({took})"
    return f"{name}: training has not finished (epoch {epochs_run} of {epochs}); run the cell again to resume"


def loss_ends(history: pd.DataFrame) -> tuple[float, float]:
    """The mean training loss of the first and of the last tenth of the logged steps: single batches differ too
    much to compare one with another."""
    tenth = max(1, len(history) // 10)
    return float(history["loss"].head(tenth).mean()), float(history["loss"].tail(tenth).mean())


def loss_trend(history: pd.DataFrame, what: str = "its loss") -> str:
    """:func:`trend` of :func:`loss_ends`, saying which steps were averaged."""
    tenth = max(1, len(history) // 10)
    steps = ("the first and the last logged step" if tenth == 1
             else f"mean of the first and the last {tenth} of {len(history):,} logged steps")  # fmt: skip
    return trend(f"{what} ({steps})", *loss_ends(history))


def finetune_plan(name: str, n_examples: int, epochs: float, max_steps: int, batch_size: int,
                  max_minutes: float | None) -> str:  # fmt: skip
    """What a fine-tuning run is asked to do, in optimiser steps: its length follows the number of examples
    (an epoch over a small data set is short), and the time budget only caps it on a slow machine."""
    cap = f"at most {max_minutes:g} minutes" if max_minutes is not None else "no time limit"
    if max_steps > 0:  # a step limit, whatever the examples: say how much of them it covers
        share = max_steps * batch_size / n_examples if n_examples else math.nan
        return (f"{name}: {n_examples:,} examples, a limit of {max_steps:,} optimiser steps in batches of "
                f"{batch_size} (about {share:.2f} epochs; {cap})")
    steps = math.ceil(n_examples * epochs / batch_size)
    what = f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    return f"{name}: {n_examples:,} examples, {what} in batches of {batch_size}: {steps:,} optimiser steps ({cap})"


def finetune_end(name: str, epochs_done: float, epochs: float, max_steps: int, steps: int,
                 max_minutes: float | None, seconds: float) -> str:  # fmt: skip
    """How a fine-tuning run ended: every step it was asked for, or its time budget, and how much it saw."""
    took = f"{seconds / 60:.1f} min"
    if max_steps > 0:
        complete = steps >= max_steps
        asked = f"{max_steps} steps"
    else:
        complete = epochs_done >= epochs - 1e-3
        asked = f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    if complete:
        return f"{name}: trained its {asked} ({epochs_done:.2f} epochs of its examples) in {took}"
    if max_minutes is not None and seconds >= 60 * max_minutes * 0.98:
        done = f"{epochs_done:.0%} of an epoch" if epochs_done < 1 else f"{epochs_done:.2f} epochs"
        return (f"{name}: stopped by its {max_minutes:g}-minute budget after {done} ({steps} steps, {took}), "
                f"before the {asked} asked")  # fmt: skip
    return f"{name}: trained {steps} steps ({epochs_done:.2f} epochs) of the {asked} asked, in {took}"


# --- does the LLM beat its retriever? -------------------------------------------------------------------


def interval_verdict(low: float, high: float, weight: float | None = None) -> str:
    """One word for a paired 95% interval of a difference to the retriever: better, worse, unclear or same."""
    if weight == 0:
        return "same (weight 0)"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    if low == high == 0:
        return "same"
    return "unclear"


def verdict_table(metrics: Mapping[str, object], methods: Mapping[str, str], baseline: str = "sasrec",
                  baselines: Mapping[str, str] | None = None) -> pd.DataFrame:  # fmt: skip
    """Every method's NDCG@10 beside the retriever's on the same users, the difference, its 95% interval and a
    verdict word. ``methods``: {metric prefix: label}; ``baselines``: {prefix: the baseline prefix its users
    share} for methods evaluated on a subset (the generation users)."""
    rows = []
    for method, label in methods.items():
        if f"{method}_test_ndcg@10" not in metrics:
            continue
        base = (baselines or {}).get(method, baseline)
        ndcg, reference = float(metrics[f"{method}_test_ndcg@10"]), float(metrics[f"{base}_test_ndcg@10"])
        low = float(metrics[f"{method}_ndcg@10_delta_ci_low"])
        high = float(metrics[f"{method}_ndcg@10_delta_ci_high"])
        weight = metrics.get(f"{method}_weight")
        rows.append({"method": label, "ndcg@10": ndcg, "sasrec_same_users": reference, "difference": ndcg - reference,
                     "ci_low": low, "ci_high": high, "verdict": interval_verdict(low, high, weight)})  # fmt: skip
    return pd.DataFrame(rows).set_index("method")


def verdict_sentence(table: pd.DataFrame, retriever: str = "SASRec") -> str:
    """The answer to "does the LLM beat its retriever here, by how much, how sure", from :func:`verdict_table`."""
    better = table[table["verdict"] == "better"]
    if len(better):
        best = better.sort_values("difference", ascending=False).iloc[0]
        name = better.sort_values("difference", ascending=False).index[0]
        relative = best["difference"] / best["sasrec_same_users"] if best["sasrec_same_users"] else math.nan
        return (f"Yes: {name} beats {retriever} on NDCG@10, {best['ndcg@10']:.4f} against "
                f"{best['sasrec_same_users']:.4f} on the same users ({relative:+.1%}); the 95% interval of the "
                f"difference, [{signed(best['ci_low'])}, {signed(best['ci_high'])}], lies above zero.")  # fmt: skip
    best = table.sort_values("difference", ascending=False).iloc[0]
    name = table.sort_values("difference", ascending=False).index[0]
    if best["verdict"] == "same (weight 0)":
        return (f"No: the closest LLM-based ranking, {name}, is {retriever}'s own ranking here: validation found "
                "no weight at which the LLM helps.")  # fmt: skip
    if best["verdict"] == "same":
        return (f"No: the closest LLM-based ranking, {name}, ranks these test users exactly as {retriever} does: "
                "the LLM's scores moved no held-out item.")  # fmt: skip
    if best["verdict"] == "unclear":
        return (f"Unclear: the best LLM-based ranking, {name}, differs from {retriever} by "
                f"{signed(best['difference'])} NDCG@10, with an interval [{signed(best['ci_low'])}, "
                f"{signed(best['ci_high'])}] that includes zero: these users cannot tell them apart.")  # fmt: skip
    if (table["verdict"] == "worse").all():
        return (f"No: every LLM-based ranking is below {retriever}; the closest, {name}, by "
                f"{signed(best['difference'])} NDCG@10 (interval [{signed(best['ci_low'])}, "
                f"{signed(best['ci_high'])}]).")  # fmt: skip
    return (f"No: no LLM-based ranking is shown to beat {retriever}; the one closest to it, {name}, is below it by "
            f"{signed(best['difference'])} NDCG@10 (interval [{signed(best['ci_low'])}, {signed(best['ci_high'])}]).")


def fusion_sentence(weight: float, curve: Mapping[float, float] | pd.DataFrame) -> str:
    """What validation chose for the fused ranking, and what it gained there over the retriever alone.
    ``curve``: validation NDCG@10 by weight (a mapping, or the frame of columns weight, ndcg@10)."""
    if isinstance(curve, pd.DataFrame):
        curve = dict(zip(curve["weight"], curve["ndcg@10"], strict=True))
    if weight == 0:
        return "validation chose weight 0: no weight helped, so the fused ranking is the retriever's own"
    if 0.0 not in curve:
        return f"validation chose weight {weight:g}: validation NDCG@10 {curve[weight]:.4f}"
    return (f"validation chose weight {weight:g}: validation NDCG@10 {curve[weight]:.4f} against "
            f"{curve[0.0]:.4f} for the retriever alone ({signed(curve[weight] - curve[0.0])})")


def where_it_helps(by_group: pd.DataFrame, method: str, baseline: str = "sasrec") -> str:
    """Which group of users (history length, item popularity) gains most and least from ``method``."""
    gains = (by_group[method] - by_group[baseline]).dropna()
    if gains.empty:
        return f"{method}: no group to compare"
    if (gains.abs() < 1e-12).all():
        return f"{method} equals {baseline} in every group"
    most, least = gains.idxmax(), gains.idxmin()

    def change(group) -> str:
        word = "a gain" if gains[group] > 0 else "a loss" if gains[group] < 0 else "no change"
        return f"{word} of {signed(gains[group])}" if gains[group] else word

    return f"{method} against {baseline}: best for {most} ({change(most)}), worst for {least} ({change(least)})"


def describe_lengths(lengths: pd.Series, n_history: int, window: int) -> str:
    """How long histories are against what a prompt shows and what SASRec reads."""
    shown = (lengths > n_history).mean()
    cut = (lengths > window).mean()
    return (f"median history {lengths.median():.0f} interactions, longest {lengths.max():,}: {shown:.0%} of users "
            f"have more than the {n_history} items a prompt shows, {cut:.0%} more than SASRec's window of {window}")


def count_sentence(n: int, total: int, what: str, none: str) -> str:
    """'N what (x% of total)' or the ``none`` sentence when there are none."""
    if n == 0:
        return none
    return f"{n:,} {what} ({n / total:.1%} of {total:,})"


def retriever_end(name: str, model, training) -> str:
    """:func:`training_end` read off a trained retriever and its ``TrainingConfig``."""
    planned = getattr(model, "planned_epochs", training.epochs)
    return training_end(name, model.stop_reason, model.epochs_run, planned, model.best_epoch, training.patience,
                        training.max_minutes, model.train_seconds, asked=training.epochs)  # fmt: skip


def cascade_sentence(k: int, single_pass: tuple[int, int], removed: tuple[int, int]) -> str:
    """What the iterative k-core removed beyond one pass: (users, items) a single pass drops, and in the end."""
    if removed == (0, 0):
        return f"nothing to remove: every user and item already has {k} interactions or more"
    extra = (removed[0] - single_pass[0], removed[1] - single_pass[1])
    if extra == (0, 0):
        return f"a single pass removes all the filter removes ({removed[0]:,} users, {removed[1]:,} items): no cascade"
    return (f"the filter removed {removed[0]:,} users and {removed[1]:,} items, {extra[0]:,} users and {extra[1]:,} "
            "items more than a single pass: the cascade")  # fmt: skip


def table1_sentence(counts: tuple[int, int, int], paper_counts: tuple[int, int, int] | None, name: str | None) -> str:
    """This run's (users, items, interactions) against PALR's Table 1, where the data is one of the paper's."""
    mine = f"{counts[0]:,} users, {counts[1]:,} items, {counts[2]:,} interactions"
    if paper_counts is None:
        return f"{mine} (not one of the paper's data sets)"
    if tuple(counts) == tuple(paper_counts):
        return f"{mine}: exactly PALR's Table 1 for {name}"
    theirs = f"{paper_counts[0]:,} / {paper_counts[1]:,} / {paper_counts[2]:,}"
    return f"{mine}: PALR's Table 1 has {theirs} for {name}"


ORDER_AWARE = ("sasrec", "gru4rec", "caser")  # read a history in order
ORDER_BLIND = ("popularity", "bpr_mf", "ncf")  # read it as a set, or not at all


def order_sentence(test_ndcg: Mapping[str, float], val_ndcg: Mapping[str, float] | None = None) -> str:
    """Whether the best order-aware model beat the best order-blind one on test NDCG@10 (notebook 03's table).
    "Best" of each kind is chosen on ``val_ndcg`` where given, as every choice here is: never on test."""
    choose = val_ndcg or test_ndcg
    aware = [name for name in ORDER_AWARE if name in test_ndcg and name in choose]
    blind = [name for name in ORDER_BLIND if name in test_ndcg and name in choose]
    if not aware or not blind:
        return "only one kind of model was trained in this run, so the two kinds cannot be compared here"
    def score(name: str) -> float:  # a model without a validation score is never the best of its kind
        return choose[name] if choose[name] == choose[name] else -math.inf

    best_aware, best_blind = max(aware, key=score), max(blind, key=score)
    a, b = test_ndcg[best_aware], test_ndcg[best_blind]
    word = "above" if a > b else "below" if a < b else "level with"
    chosen = " (each the best of its kind on validation)" if val_ndcg else ""
    return (f"the order-aware {best_aware} (test NDCG@10 {a:.4f}) is {word} the order-blind {best_blind} "
            f"({b:.4f}){chosen}")


def popularity_share(counts: pd.Series, top: float = 0.1) -> str:
    """How much of all interactions the most popular ``top`` share of items receives."""
    n = max(1, round(len(counts) * top))
    share = counts.nlargest(n).sum() / counts.sum()
    return (f"the most popular {top:.0%} of items ({n:,} of {len(counts):,}) receive {share:.0%} of all "
            f"interactions (an even spread would give them {n / len(counts):.0%})")

"""Seaborn figures the notebooks show; each title states what the figure finds."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from palr_utils.core.constants import ITEM, USER


def plot_history_lengths(interactions: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of interactions per user (log-scaled x), with the median marked."""
    lengths = interactions.groupby(USER).size()
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    sns.histplot(lengths, log_scale=True, bins=40, ax=ax, color="tab:blue")
    median = float(lengths.median())
    ax.axvline(median, color="black", linestyle="--", label=f"median = {median:.0f}")
    ax.set(
        xlabel="interactions per user (log scale)",
        ylabel="number of users",
        title=f"Most users have short histories; a few have very long ones (max {lengths.max()})",
    )
    ax.legend()
    return ax


def plot_item_popularity(interactions: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Item interaction counts in decreasing order (log y): the long tail."""
    counts = interactions[ITEM].value_counts().to_numpy()
    share_top = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    sns.lineplot(x=np.arange(1, len(counts) + 1), y=counts, ax=ax, color="tab:orange")
    ax.set(
        yscale="log",
        xlabel="item rank by popularity",
        ylabel="interactions (log scale)",
        title=f"Long tail: the top 10% of items receive {share_top:.0%} of all interactions",
    )
    return ax


def plot_training_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Training loss and validation NDCG@10 per epoch, one line per model."""
    frame = pd.concat([h.assign(model=name) for name, h in histories.items()], ignore_index=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    sns.lineplot(data=frame, x="epoch", y="loss", hue="model", ax=left, legend=False)
    left.set(title="Training loss (each model's own loss)", ylabel="loss", yscale="log")
    sns.lineplot(data=frame, x="epoch", y="val_ndcg@10", hue="model", marker="o", ax=right)
    best = frame.loc[frame["val_ndcg@10"].idxmax()]
    right.set(title=f"Validation NDCG@10: {best['model']} is best ({best['val_ndcg@10']:.3f})", ylabel="NDCG@10")
    figure.tight_layout()
    return figure


def plot_model_comparison(results: pd.DataFrame, metric: str = "test_ndcg@10") -> plt.Axes:
    """Bar chart of one test metric per model, best on top."""
    ordered = results[metric].sort_values(ascending=False)
    ax = plt.subplots(figsize=(7, 3.5))[1]
    sns.barplot(x=ordered.to_numpy(), y=ordered.index, ax=ax, color="tab:green")
    ax.set(xlabel=metric, ylabel="", title=f"{ordered.index[0]} leads on {metric} ({ordered.iloc[0]:.3f})")
    return ax


def plot_recall_at_k(recall: dict[int, float], reranked: int | None = None) -> plt.Axes:
    """Recall@K of the exported candidates: the share of test items a re-ranker of the top K could still find."""
    ks, values = list(recall), list(recall.values())
    ax = plt.subplots(figsize=(6, 3.5))[1]
    sns.lineplot(x=ks, y=values, marker="o", ax=ax)
    for k, value in recall.items():
        ax.annotate(f"{value:.3f}", (k, value), textcoords="offset points", xytext=(0, 6), ha="center")
    if reranked is not None:
        ax.axvline(reranked, color="grey", linestyle="--", label=f"PALR re-ranks the top {reranked}")
        ax.legend(loc="lower right")
    ax.set(xlabel="K (candidates kept)", ylabel="Recall@K (test)", xticks=ks, ylim=(0, max(values) * 1.2),
           title=f"Any re-ranker of the top {ks[-1]} misses {1 - values[-1]:.0%} of test items")  # fmt: skip
    return ax


def plot_top_keywords(keyword_lists: pd.Series, n: int = 15) -> plt.Axes:
    """The ``n`` most frequent profile keywords across users."""
    counts = keyword_lists.explode().dropna().value_counts().head(n)
    ax = plt.subplots(figsize=(7, 0.3 * max(len(counts), 3) + 1))[1]
    if counts.empty:
        ax.set(title="No keywords: every profile came back empty")
        return ax
    sns.barplot(x=counts.to_numpy(), y=counts.index, ax=ax, color="tab:purple")
    share = counts.iloc[0] / len(keyword_lists)
    ax.set(xlabel="users", ylabel="", title=f"'{counts.index[0]}' appears in {share:.0%} of the profiles")
    return ax


def plot_finetune_losses(histories: dict[str, pd.DataFrame]) -> plt.Axes:
    """Training loss per optimiser step for each fine-tuning run."""
    frame = pd.concat([h.assign(run=f"PALR_{name}") for name, h in histories.items()], ignore_index=True)
    ax = plt.subplots(figsize=(7, 3.5))[1]
    sns.lineplot(data=frame, x="step", y="loss", hue="run", ax=ax)
    last = frame.groupby("run")["loss"].last()
    endings = ", ".join(f"{run} ends at {loss:.2f}" for run, loss in last.items())
    ax.set(xlabel="optimiser step", ylabel="answer-token loss", title=f"Fine-tuning loss: {endings}")
    return ax


def plot_letter_prior(prior: np.ndarray, labels: Sequence[str]) -> plt.Axes:
    """How often the model would pick each letter, averaged over prompts, against a uniform choice."""
    shares = np.exp(prior) / np.exp(prior).sum()
    ax = plt.subplots(figsize=(7, 3))[1]
    sns.barplot(x=list(labels[: len(shares)]), y=shares, ax=ax, color="tab:orange")
    ax.axhline(1 / len(shares), color="black", linestyle="--", label="no position preference")
    favourite = int(np.argmax(shares))
    ratio = shares[favourite] * len(shares)  # against a uniform 1 / n
    ax.set(
        xlabel="candidate letter (candidates shuffled per user)",
        ylabel="mean probability",
        title=f"Position bias: '{labels[favourite]}' gets {ratio:.1f}x its fair share",
    )
    ax.legend()
    return ax


def plot_rank_loss(history: pd.DataFrame, n_candidates: int) -> plt.Axes:
    """PALR-rank's listwise loss per step against chance: ln K, the loss of a uniform guess among K letters."""
    ax = plt.subplots(figsize=(7, 3.5))[1]
    sns.lineplot(data=history, x="step", y="loss", ax=ax, label="PALR-rank")
    chance = float(np.log(n_candidates))
    ax.axhline(chance, color="black", linestyle="--", label=f"chance: ln {n_candidates} = {chance:.2f}")
    tenth = max(1, len(history) // 10)
    last = history["loss"].tail(tenth).mean()
    ax.set(xlabel="optimiser step", ylabel="listwise loss (letters only)",
           title=f"PALR-rank ends at {last:.2f}, chance is {chance:.2f}")  # fmt: skip
    ax.legend()
    return ax


def plot_fusion_curve(curve: pd.DataFrame, chosen: float) -> plt.Axes:
    """Validation NDCG@10 of retriever + w x LLM for each weight w tried; w = 0 is the retriever alone."""
    ax = plt.subplots(figsize=(6, 3.5))[1]
    sns.lineplot(data=curve, x="weight", y="ndcg@10", marker="o", ax=ax)
    base = float(curve.loc[curve["weight"] == 0, "ndcg@10"].iloc[0]) if (curve["weight"] == 0).any() else None
    if base is not None:
        ax.axhline(base, color="grey", linestyle="--", label="the retriever alone (w = 0)")
        ax.legend(loc="lower left")
    best = float(curve.loc[curve["weight"] == chosen, "ndcg@10"].iloc[0])
    gain = f", {best - base:+.4f} over the retriever" if base is not None else ""
    ax.set(xlabel="fusion weight w of the LLM", ylabel="validation NDCG@10",
           title=f"Validation chooses w = {chosen:g}{gain}")  # fmt: skip
    return ax


def plot_delta_intervals(intervals: dict[str, float], baseline: str = "sasrec") -> plt.Axes:
    """Each method's 95% interval of NDCG@10 minus the baseline's on the same users; zero means no difference."""
    methods = sorted({key.split("_ndcg@10_delta_ci_")[0] for key in intervals})
    low = np.array([intervals[f"{m}_ndcg@10_delta_ci_low"] for m in methods])
    high = np.array([intervals[f"{m}_ndcg@10_delta_ci_high"] for m in methods])
    ax = plt.subplots(figsize=(7, 0.45 * len(methods) + 1.2))[1]
    colours = ["tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:grey" for lo, hi in zip(low, high, strict=True)]
    ax.hlines(methods, low, high, colors=colours, linewidth=6)
    ax.axvline(0, color="black", linestyle="--")
    above = [m for m, lo in zip(methods, low, strict=True) if lo > 0]
    title = f"Better than {baseline} for sure: {', '.join(above)}" if above else f"No method is surely above {baseline}"
    ax.set(xlabel=f"NDCG@10 minus {baseline}'s (95% paired bootstrap interval)", ylabel="", title=title)
    return ax

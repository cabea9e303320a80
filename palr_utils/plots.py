"""Seaborn figures the notebooks show; each title states what the figure finds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from palr_utils.constants import ITEM, USER


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

"""Settings that fit a data set the presets do not know, chosen by rules on its statistics.

A preset's retrieval settings were chosen on the validation users of one data set (the ``cpu`` preset's on
MovieLens-1M, its ``dataset_overrides`` on Beauty). Data of one's own gets the settings of the data set it
resembles: a :class:`SettingsRule` says which statistic decides (notebook 01 writes them into
``dataset_info.json``), and :func:`fit_window` and :func:`scale_budget` fit the history window and the time
budgets to its size. ``RunPreset.fit_to_data`` applies them and explains its choice in a :class:`SettingsChoice`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SettingsRule:
    """Use ``settings`` (RunPreset fields and their values) on data whose ``statistic`` lies below ``below``.

    ``anchor`` names the data set whose validation users chose these settings; its size is the reference for
    the time budgets (a data set a quarter its size gets a quarter of each budget, see :func:`scale_budget`).
    """

    name: str
    statistic: str  # a key of dataset_info["statistics"] (palr_utils.data.data_statistics)
    below: float
    settings: Mapping[str, object] = field(compare=False)
    anchor: str
    why: str  # what about such data makes these settings fit, in a few words

    def holds(self, statistics: Mapping[str, float]) -> bool:
        return statistics[self.statistic] < self.below


@dataclass(frozen=True)
class SettingsChoice:
    """Which settings a run uses and why, as notebook 03 prints and records them."""

    rule: str  # the rule's name, "recognised", or "the preset's own"
    anchor: str | None  # the data set whose validation users chose the settings (None: not known)
    reason: str  # one computed sentence
    window: int | None = None  # SASRec's and GRU4Rec's history window, when fitted to the data
    budget_scale: float = 1.0  # the time budgets as a share of the anchor's

    def record(self) -> dict[str, object]:
        """Flat entries for notebook 03's metrics."""
        record: dict[str, object] = {"settings_rule": self.rule, "settings_reason": self.reason,
                                     "settings_budget_scale": round(self.budget_scale, 4)}  # fmt: skip
        if self.anchor:
            record["settings_anchor"] = self.anchor
        if self.window is not None:
            record["settings_window"] = self.window
        return record


def first_rule(rules: tuple[SettingsRule, ...], statistics: Mapping[str, float]) -> SettingsRule | None:
    """The first rule that holds for these statistics, or None (the preset's own settings then apply)."""
    return next((rule for rule in rules if rule.holds(statistics)), None)


def fit_window(p90_history: float, sizes: tuple[int, ...]) -> int:
    """The shortest window that holds 90% of the histories whole (longer ones are cut into several windows
    in training, so nothing is lost); the largest size when histories are longer than all of them."""
    return next((size for size in sorted(sizes) if size >= p90_history), max(sizes))


def scale_budget(minutes: float | None, scale: float, floor: float) -> float | None:
    """A time budget for data ``scale`` times the anchor's size: an epoch costs about in proportion to the
    interactions, so the same epochs fit in proportionally less time; never below ``floor`` minutes (a budget
    is a safety net for slow machines, not the usual way training ends) and never above the anchor's."""
    if minutes is None:
        return None
    return round(min(minutes, max(floor, minutes * scale)), 1)


NAMES = {"ml-1m": "MovieLens-1M", "beauty": "Beauty"}  # how the sentences name the anchor data sets


def describe_choice(rule: SettingsRule | None, threshold: SettingsRule | None, statistics: Mapping[str, float], *,
                    anchor: str, window: int, scale: float, sasrec_minutes: float | None,
                    floor: float) -> str:  # fmt: skip
    """One sentence, computed from the statistics, saying which settings apply and why."""
    decided, name = rule or threshold, NAMES.get(anchor, anchor)
    if decided is None:
        head = f"no rule applies, so the preset's own settings (chosen on {name})"
    else:
        statistic = f"{decided.statistic.replace('_', ' ')} {statistics[decided.statistic]:g}"
        if rule:
            head = (f"{statistic} (below {rule.below:g}): {rule.name}, so the settings chosen on {name}'s "
                    f"validation users ({rule.why})")  # fmt: skip
        else:
            head = f"{statistic} (not below {decided.below:g}), so the preset's own settings (chosen on {name})"
    budget = f"SASRec: {sasrec_minutes:g} minutes" if sasrec_minutes is not None else "SASRec: no limit"
    size = f"{statistics['n_interactions']:,} interactions"
    if round(scale, 2) < 1:
        size += f", {scale:.0%} of {name}'s: time budgets scaled to match, at least {floor:g} minutes ({budget})"
    else:
        size += f", as many as {name}'s or more: its time budgets ({budget})"
    return (f"{head}; a window of {window} items (90th-percentile history: {statistics['p90_history']:g} "
            f"items); {size}")

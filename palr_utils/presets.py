"""Named run presets: every size and setting a notebook needs, in one place.

A notebook asks for a preset by name (its ``PROFILE`` parameter, ``PROFILE = "tiny"``, the name people's
commands already use) instead of repeating numbers, the way nanoGPT keeps a small config in a named file.
"Profile" alone means a *user* profile in this project: the keywords notebook 02 writes (``user_profiles``).

* ``tiny``  - synthetic data, a few minutes on 2 CPU cores; what the tests run.
* ``cpu``   - real data on a laptop CPU with a small LLaMA-architecture model.
* ``paper`` - the paper's setting: LLaMA-7B in 4-bit on a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from palr_utils.core.constants import DATASETS, METRICS_DIR
from palr_utils.core.overrides import OverrideError, apply_overrides, format_overrides, parse_overrides
from palr_utils.core.paper import PAPER_TABLE_1
from palr_utils.core.paths import project_root
from palr_utils.data.synthetic import SyntheticConfig
from palr_utils.finetune.instructions import InstructionConfig
from palr_utils.finetune.sft import FinetuneConfig
from palr_utils.llm.loading import PAPER_MODEL, LLMConfig
from palr_utils.retrieval import BASELINE_NAMES, baseline_config
from palr_utils.retrieval.candidates import RANK_PREFIXES_EXPORTED
from palr_utils.retrieval.sasrec import SASRecConfig
from palr_utils.retrieval.training import TrainingConfig
from palr_utils.rules import SettingsChoice, SettingsRule, describe_choice, first_rule, fit_window, scale_budget


def _known_baseline(name: str) -> bool:
    """True for one of the baselines' names; an OVERRIDES key with another is refused with the names."""
    if name not in BASELINE_NAMES:
        raise OverrideError(f"OVERRIDES: no baseline called {name!r}; the baselines are {list(BASELINE_NAMES)}")
    return True


@dataclass(frozen=True)
class RunPreset:
    """Everything that differs between the tiny, cpu and paper runs (the ``PROFILE`` parameter picks one)."""

    name: str
    description: str
    default_dataset: str
    min_interactions: int = 5  # the paper's 5-core filter
    # a seeded sample of this many users, drawn in notebook 01 before the 5-core filter (None: every user), so
    # that a lesson on a large data set of one's own runs in minutes: OVERRIDES="max_users=500"
    max_users: int | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    sasrec_training: TrainingConfig = field(default_factory=TrainingConfig)
    # One SASRec training instead of two: notebook 03 trains the one-step-back twin first (with ``sasrec_training``)
    # and SASRec starts from its weights, continued on the full histories with this training (a few epochs,
    # early-stopped on validation); None: SASRec is trained from scratch like the twin
    sasrec_from_twin: TrainingConfig | None = None
    baseline_training: TrainingConfig = field(default_factory=TrainingConfig)  # BPR-MF, NCF, GRU4Rec, Caser
    # the baselines notebook 03 trains (a benchmark of SASRec alone: OVERRIDES="baselines=[]")
    baselines: tuple[str, ...] = BASELINE_NAMES
    # a baseline whose training differs from ``baseline_training`` on this data: {model name: its settings}
    # (OVERRIDES="baseline_training_by_model.ncf.max_minutes=15" starts an entry from what that model uses now)
    baseline_training_by_model: dict[str, TrainingConfig] = field(
        default_factory=dict, compare=False, repr=False,
        metadata={"new_entry": lambda preset, name: _known_baseline(name) and preset.baseline_settings(name)},
    )  # fmt: skip
    # a baseline whose model differs from its default on this data: {model name: its config, e.g. NCFConfig(...)}
    baseline_models: dict[str, object] = field(
        default_factory=dict, compare=False, repr=False,
        metadata={"new_entry": lambda preset, name: _known_baseline(name)
                  and baseline_config(name, preset.baseline_max_len, preset.baseline_models)},
    )  # fmt: skip
    baseline_max_len: int = 200  # GRU4Rec's history length
    # the retriever's top-K that notebook 03 exports per user and history (Recall@K's largest K); the prompts
    # hold fewer: ``instructions.n_candidates`` (= ``rerank_candidates``)
    n_exported_candidates: int = 50
    llm: LLMConfig = field(default_factory=LLMConfig)  # SmolLM2-135M-Instruct unless the preset says otherwise
    finetune_fraction: float = 0.2  # PALR fine-tunes on 20% of the users
    n_eval_users: int | None = 1000  # a fixed sample of test users; None = all users
    profile_history_items: int = 20  # most recent items shown to the LLM when writing a user profile
    profile_batch_size: int = 16
    profile_max_new_tokens: int = 32
    instructions: InstructionConfig = field(default_factory=InstructionConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    rerank_batch_size: int = 8
    n_calibration_users: int = 200  # validation prompts that measure the letters' position bias (fast scoring)
    rerank_max_new_tokens: int = 160  # room for 10 "C. title" lines
    # Generation (PALR_v1, PALR_v2) costs about a second per user on a CPU: it ranks a seeded subset of the
    # evaluated users (None: all of them); the one-pass methods rank every evaluated user.
    n_generation_users: int | None = None
    # PALR-rank (palr_utils.palr_rank, our extension): trained to rank with a listwise loss, on the training
    # prefixes of this share of users (the paper's PALR_v1/v2 keep its 20%)
    rank_fraction: float = 1.0
    rank_finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # residual training (our extension): PALR-rank's listwise loss over the one-step-back retriever's log-softmax
    # plus its scores, so that it learns what the retriever misses (palr_utils.palr_rank.trainer.listwise_loss)
    rank_residual: bool = False
    # random negatives (our extension): this many of the retriever's lowest-ranked wrong candidates in each training
    # example give way to random catalogue items the user never had, easy negatives beside the hard ones
    rank_random_negatives: int = 0
    # collaborative item tokens (our extension, after LLaRA): one token after each title, the one-step-back SASRec's
    # item embedding through a small projector trained beside the adapter at its own rate
    # (palr_utils.palr_rank.item_tokens)
    rank_item_tokens: bool = False
    rank_item_tokens_lr: float = 1e-3
    # several prefixes per user (our extension): besides the last training item, the items before it answer
    # earlier prefixes of the same history, each among the twin's candidates after that prefix (1 = the last only)
    rank_prefixes: int = 1
    # fusion with the retriever: its log-softmax + w x PALR-rank's log-probabilities, w chosen on validation
    fusion_weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    # Settings that differ by data set, chosen on that data set's validation users: {paper data set: {field:
    # value}}. Amazon histories are short and sparse (Beauty: median 6 items, MovieLens-1M: 96), and what
    # suits MovieLens overfits there. Applied by :meth:`for_data` once notebook 01 has recognised the data.
    dataset_overrides: dict[str, dict[str, object]] = field(default_factory=dict, compare=False, repr=False)
    # Data the preset does not recognise (a custom data set, a sample of Beauty): the first rule that holds on
    # its statistics picks the settings of the data set it resembles (palr_utils.rules); none: the preset's own.
    # With rules, the history window and the time budgets are fitted to the data too (``fit_to_data``).
    settings_rules: tuple[SettingsRule, ...] = field(default=(), compare=False, repr=False)
    window_sizes: tuple[int, ...] = (50, 100, 200)  # SASRec's and GRU4Rec's windows a rule chooses from
    min_budget_minutes: float = 5.0  # a fitted time budget is never shorter
    # this run's OVERRIDES, as (dotted key, value) pairs (palr_utils.core.overrides): applied last, also after
    # ``for_data``, so that a user's setting wins over a data set's
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def rerank_candidates(self) -> int:
        """How many of the retriever's best candidates PALR_v2 re-ranks in notebook 05 (the paper: 50): as many
        as its *Recommend_Retrieval* training lists held, so it reads lists as long as those it learned from."""
        return self.instructions.n_candidates

    def for_data(self, info: dict) -> RunPreset:
        """This preset with the settings for the data notebook 01 described (``processed.info``), see
        :meth:`fit_to_data`."""
        return self.fit_to_data(info)[0]

    def fit_to_data(self, info: dict) -> tuple[RunPreset, SettingsChoice]:
        """This preset fitted to the data notebook 01 described (``processed.info``), and why.

        A data set the preset recognises (``paper_dataset``) gets the settings it keeps for it
        (``dataset_overrides``, or its own for its default data set). Other data gets, where the preset has
        ``settings_rules``, the settings of the first rule that holds on its ``statistics``, a history window
        from its history lengths and time budgets scaled to its size. Training settings take this preset's
        seed (the run's SEED); the run's OVERRIDES are applied last and win, and the reason says so.
        """
        known = info.get("paper_dataset") or ""
        if known in self.dataset_overrides or known == self.default_dataset or not self.settings_rules:
            if known in self.dataset_overrides:
                reason = f"recognised as {known}: the settings the {self.name} preset keeps for it"
            elif known:
                reason = f"recognised as {known}: the {self.name} preset's own settings"
            else:
                reason = f"the {self.name} preset's own settings (it has no rules that fit settings to data)"
            choice = SettingsChoice("recognised" if known else "the preset's own", known or None,
                                    reason + self._overridden())  # fmt: skip
            return self._with_changes(self.dataset_overrides.get(known, {})), choice
        statistics = self._statistics(info)
        rule = first_rule(self.settings_rules, statistics)
        anchor = rule.anchor if rule else self.default_dataset
        scale = min(1.0, statistics["n_interactions"] / PAPER_TABLE_1[anchor][2])
        fitted = self._scaled_budgets(self._with_changes(dict(rule.settings) if rule else {}), scale)
        window = fit_window(statistics["p90_history"], self.window_sizes)
        fitted = dataclasses.replace(
            fitted, sasrec=dataclasses.replace(fitted.sasrec, max_len=window), baseline_max_len=window
        )
        final = apply_overrides(fitted, self.overrides)  # what the run uses, described below
        reason = describe_choice(rule, self.settings_rules[0], statistics, anchor=anchor, window=final.sasrec.max_len,
                                 scale=scale, sasrec_minutes=final.sasrec_training.max_minutes,
                                 floor=self.min_budget_minutes)  # fmt: skip
        choice = SettingsChoice(rule.name if rule else "the preset's own", anchor, reason + self._overridden(),
                                final.sasrec.max_len, scale)  # fmt: skip
        return final, choice

    def _overridden(self) -> str:
        return f"; OVERRIDES: {self.overrides_text}" if self.overrides else ""

    def _statistics(self, info: dict) -> dict:
        """notebook 01's statistics, with every one the rules read, or the fix when they are missing."""
        statistics = info.get("statistics") or {}
        needed = {"n_interactions", "p90_history", *(rule.statistic for rule in self.settings_rules)}
        missing = sorted(needed - set(statistics))
        if missing:
            raise ValueError(f"dataset_info.json has no {', '.join(missing)} (written by an older notebook 01): "
                             "run notebook 01 again")  # fmt: skip
        return statistics

    def _with_changes(self, changes: dict[str, object]) -> RunPreset:
        if not changes:
            return self
        return apply_overrides(dataclasses.replace(self, **changes).with_seed(self.sasrec_training.seed),
                               self.overrides)  # fmt: skip

    def _scaled_budgets(self, preset: RunPreset, scale: float) -> RunPreset:
        """``preset`` with every retriever's time budget scaled (:func:`palr_utils.rules.scale_budget`)."""

        def scaled(training: TrainingConfig) -> TrainingConfig:
            minutes = scale_budget(training.max_minutes, scale, self.min_budget_minutes)
            return dataclasses.replace(training, max_minutes=minutes)

        return dataclasses.replace(
            preset,
            sasrec_training=scaled(preset.sasrec_training),
            sasrec_from_twin=preset.sasrec_from_twin and scaled(preset.sasrec_from_twin),
            baseline_training=scaled(preset.baseline_training),
            baseline_training_by_model={name: scaled(t) for name, t in preset.baseline_training_by_model.items()},
        )

    def with_overrides(self, overrides: str) -> RunPreset:
        """This preset with an OVERRIDES string applied (``"sasrec_training.max_minutes=20 finetune.lora_r=16"``);
        an unknown key or a value of the wrong type raises :class:`~palr_utils.core.overrides.OverrideError`."""
        pairs = parse_overrides(overrides)
        for key, _ in pairs:
            if key.split(".")[0] in ("overrides", "dataset_overrides", "name") or key.endswith(".seed"):
                raise OverrideError(
                    f"OVERRIDES: {key} cannot be overridden (use SEED for the seed, PROFILE for the preset)"
                )
        return dataclasses.replace(apply_overrides(self, pairs), overrides=self.overrides + pairs)

    @property
    def overrides_text(self) -> str:
        return format_overrides(self.overrides)

    def baseline_settings(self, name: str) -> TrainingConfig:
        """How the baseline called ``name`` (``bpr_mf``, ``ncf``, ``gru4rec``, ``caser``) is trained."""
        return self.baseline_training_by_model.get(name, self.baseline_training)

    def with_seed(self, seed: int) -> RunPreset:
        """This preset with ``seed`` in every training setting that draws random numbers (the retrievers'; the
        LLM's fine-tuning, sampling and generation take the run's seed directly)."""
        return dataclasses.replace(
            self,
            sasrec_training=dataclasses.replace(self.sasrec_training, seed=seed),
            sasrec_from_twin=self.sasrec_from_twin and dataclasses.replace(self.sasrec_from_twin, seed=seed),
            baseline_training=dataclasses.replace(self.baseline_training, seed=seed),
            baseline_training_by_model={
                name: dataclasses.replace(training, seed=seed)
                for name, training in self.baseline_training_by_model.items()
            },
        )

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.baselines) - set(BASELINE_NAMES)):
            raise ValueError(f"baselines: no baseline called {', '.join(map(repr, unknown))}; "
                             f"the baselines are {list(BASELINE_NAMES)}")  # fmt: skip
        if self.settings_rules:
            anchors = {rule.anchor for rule in self.settings_rules} | {self.default_dataset}
            if not anchors <= set(PAPER_TABLE_1) or not self.window_sizes:
                raise ValueError("settings rules need anchors of the paper's Table 1 (their sizes scale the "
                                 "budgets) and at least one window size")  # fmt: skip
        if self.rank_residual and self.rank_random_negatives:
            raise ValueError("rank_residual and rank_random_negatives exclude each other: residual training adds the "
                             "retriever's score of every candidate, and it never scored the random ones")  # fmt: skip
        if not 0 <= self.rank_random_negatives < self.rerank_candidates:
            raise ValueError(f"rank_random_negatives ({self.rank_random_negatives}) must lie between 0 and "
                             f"{self.rerank_candidates - 1} (instructions.n_candidates - 1: the answer keeps a place)")
        if not 1 <= self.rank_prefixes <= RANK_PREFIXES_EXPORTED:
            raise ValueError(f"rank_prefixes ({self.rank_prefixes}) must lie between 1 and {RANK_PREFIXES_EXPORTED}, "
                             "the training prefixes per user notebook 03 exports")  # fmt: skip
        if not 10 <= self.rerank_candidates <= self.n_exported_candidates:
            raise ValueError(
                f"instructions.n_candidates ({self.rerank_candidates}), also the candidates re-ranked, must lie "
                f"between 10 (the list length evaluated) and n_exported_candidates ({self.n_exported_candidates}, "
                "what notebook 03 exports)"
            )


# Settings for short, sparse histories, chosen on Beauty's validation users: what suits MovieLens-1M overfits
# there, so a short window, a small model and heavy dropout (0.5, as the SASRec paper used on Amazon data).
# Measurements: docs/results.md, "Retrieval on Amazon Beauty". Beauty gets them by name; other data whose
# histories are as short gets them by the rule below.
SHORT_HISTORY_SETTINGS: dict[str, object] = {
    "sasrec": SASRecConfig(max_len=50, hidden_size=64, n_blocks=2, dropout=0.5, attention_dropout=0.5),
    "sasrec_training": TrainingConfig(
        epochs=200, learning_rate=1e-3, eval_every=2, patience=8, max_minutes=15, bf16_autocast="auto"
    ),
    # SASRec from scratch: the twin one step back loses a larger share of these short histories (not measured)
    "sasrec_from_twin": None,
    "baseline_max_len": 50,
    # chosen on validation NDCG@10 (docs/results.md, "BPR-MF and NCF on Beauty"): BPR-MF overfits without a
    # little weight decay; NCF was still improving when 5 minutes stopped it, so it has 15
    "baseline_training_by_model": {
        "bpr_mf": TrainingConfig(
            epochs=100, learning_rate=2e-3, weight_decay=1e-6, eval_every=2, patience=3, max_minutes=5
        ),
        "ncf": TrainingConfig(epochs=100, learning_rate=2e-3, eval_every=2, patience=3, max_minutes=15),
    },
}


PRESETS: dict[str, RunPreset] = {
    "tiny": RunPreset(
        name="tiny",
        description="synthetic data, minutes on 2 CPU cores (tests)",
        default_dataset="synthetic",
        sasrec=SASRecConfig(max_len=50),
        # 382 users: small batches give enough optimiser steps per epoch
        sasrec_training=TrainingConfig(epochs=60, batch_size=32, learning_rate=3e-3, eval_every=2, patience=5),
        # as the cpu preset on MovieLens-1M: SASRec continues from its twin
        sasrec_from_twin=TrainingConfig(epochs=10, batch_size=32, learning_rate=1e-3, eval_every=1, patience=3,
                                        lr_schedule="cosine", warmup_epochs=0.5),
        baseline_training=TrainingConfig(epochs=60, batch_size=32, learning_rate=3e-3, eval_every=2, patience=5),
        baseline_max_len=50,
        n_eval_users=40,
        n_calibration_users=20,
        # generation is the slow part of notebook 05 on a CPU (PALR_v1 and PALR_v2 write up to 10 lines each):
        # 16 of the 40 users and room for 10 short lines keep the lesson under 3 minutes
        n_generation_users=16,  # two batches of rerank_batch_size
        rerank_max_new_tokens=120,
        instructions=InstructionConfig(n_history=10, n_targets=5, n_candidates=10, n_retrieval_targets=2),
        # random batches: with 8 steps, length-grouped ones would put the long (low-loss) Recommend_Retrieval
        # examples first and the short Recommend ones last, and the loss could not be compared
        finetune=FinetuneConfig(max_steps=8, max_length=512, learning_rate=5e-4, group_by_length=False),
        rank_finetune=FinetuneConfig(max_steps=8, max_length=512, learning_rate=5e-4, group_by_length=False),
    ),
    "cpu": RunPreset(
        name="cpu",
        description="real data on a laptop CPU with SmolLM2-135M",
        default_dataset="ml-1m",
        # Three blocks of hidden size 128 (no attention-probability dropout) and a learning rate warmed up over
        # one epoch, then lowered along a half cosine to zero at epoch 35: the best of the variants measured on
        # validation (docs/results.md, "Retrieval"). The budget is a safety net on slower machines (training
        # stops there with the best checkpoint so far).
        sasrec=SASRecConfig(hidden_size=128, n_blocks=3, attention_dropout=0.0),
        sasrec_training=TrainingConfig(
            epochs=35, learning_rate=3e-3, eval_every=2, patience=10, max_minutes=28,
            lr_schedule="cosine", warmup_epochs=1, bf16_autocast="auto",
        ),  # fmt: skip
        # SASRec continues from the twin (trained with the settings above) for at most 6 epochs along a short cosine
        # from 1e-3: on MovieLens-1M, measured on two days, at least as good on validation as a SASRec from scratch
        # in about a third of its time (docs/results.md, "One SASRec for both roles"); the budget is a safety net
        sasrec_from_twin=TrainingConfig(
            epochs=6, learning_rate=1e-3, eval_every=1, patience=3, max_minutes=15,
            lr_schedule="cosine", warmup_epochs=0.5, bf16_autocast="auto",
        ),  # fmt: skip
        baseline_training=TrainingConfig(epochs=100, learning_rate=2e-3, eval_every=2, patience=3, max_minutes=5),
        # Caser on MovieLens-1M was still improving when 5 minutes stopped it (docs/results.md, "Retrieval"):
        # it gets 15 (Beauty keeps 5, see its overrides)
        baseline_training_by_model={
            "caser": TrainingConfig(epochs=100, learning_rate=2e-3, eval_every=2, patience=3, max_minutes=15),
        },
        # Re-ranking the top 20 rather than the paper's 50 halves the prompt, in training and at evaluation;
        # Recommend_Retrieval hides 3 answers among 20 candidates, close to evaluation's "1 (or 0) among 20".
        instructions=InstructionConfig(n_history=10, n_targets=10, n_candidates=20, n_retrieval_targets=3),
        # One epoch. Length-grouped batches (less padding) and adapters on the last 6 of SmolLM2's 30 layers (faster
        # steps; docs/results.md, "Fine-tuning PALR_v1, PALR_v2 and PALR-rank") keep PALR_v2 under 45 minutes on
        # 2 cores; the budget is a safety net on slower machines (the metrics record how much of the epoch ran).
        finetune=FinetuneConfig(epochs=1, max_length=768, lora_last_layers=6, max_minutes=44),
        # one-pass methods on 2,000 users (a bootstrap interval of a difference in NDCG@10 of about +-0.01),
        # generation on 1,000 of them
        n_eval_users=2000,
        n_generation_users=1000,
        # PALR-rank reads the prompt once for all 20 candidates: one epoch over every user whose next item is among
        # their candidates. Adapters on every projection of the last 8 layers: the scorer must learn a new task,
        # not a new wording; the budget keeps the LLM stage near two hours on 2 cores.
        rank_finetune=FinetuneConfig(
            epochs=1, max_length=640, lora_last_layers=8, lora_r=16, lora_alpha=32, learning_rate=4e-4,
            target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            max_minutes=40,
        ),
        dataset_overrides={"beauty": SHORT_HISTORY_SETTINGS},
        # The threshold lies between the two data sets the settings were chosen on (Beauty: median history 6,
        # MovieLens-1M: 96), nearer Beauty's: histories of up to a few dozen items are still "a few recent
        # purchases". benchmarks/settings_rules.py measures the rule on data it was not written from.
        settings_rules=(
            SettingsRule("short histories", "median_history", below=30, settings=SHORT_HISTORY_SETTINGS,
                         anchor="beauty", why="few items per user: a small model and heavy dropout"),
        ),  # fmt: skip
    ),
    "paper": RunPreset(
        name="paper",
        description="the paper's setting: LLaMA-7B in 4-bit on a GPU",
        default_dataset="ml-1m",
        sasrec_training=TrainingConfig(
            epochs=400, learning_rate=1e-3, eval_every=2, patience=10, lr_decay_factor=0.5, lr_decay_patience=2
        ),
        baseline_training=TrainingConfig(epochs=200, learning_rate=1e-3, eval_every=2, patience=5),
        llm=LLMConfig(PAPER_MODEL, load_in_4bit=True),
        n_eval_users=None,
        profile_batch_size=32,
        instructions=InstructionConfig(n_history=20, n_targets=10, n_candidates=50),
        finetune=FinetuneConfig(
            epochs=2, batch_size=4, gradient_accumulation_steps=4, max_length=2048, gradient_checkpointing=True
        ),
        rank_finetune=FinetuneConfig(
            epochs=1, batch_size=4, gradient_accumulation_steps=4, max_length=2048, gradient_checkpointing=True
        ),
    ),
}


def get_preset(name: str) -> RunPreset:
    """Return the run preset called ``name`` (a ``PROFILE`` value) or say which names exist."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown PROFILE {name!r}; choose one of {sorted(PRESETS)}.") from None


@dataclass(frozen=True)
class RunConfig:
    """The resolved parameters of one notebook run."""

    preset: RunPreset  # chosen by the PROFILE parameter
    dataset: str
    data_dir: Path
    artifact_dir: Path
    seed: int

    @property
    def metrics_dir(self) -> Path:
        return self.artifact_dir / METRICS_DIR

    @property
    def overrides(self) -> str:
        """The OVERRIDES this run applied to its preset ("" for none)."""
        return self.preset.overrides_text

    def record(self) -> dict[str, str]:
        """What each notebook's metrics record about the run's settings beside its numbers."""
        return {"profile": self.preset.name, "overrides": self.overrides}


def _resolve_path(value: str | Path | None, default: Path) -> Path:
    if value is None or str(value) == "":
        return default
    path = Path(value).expanduser()
    return path if path.is_absolute() else (project_root() / path).resolve()


def parse_seed(value: object) -> int:
    """The ``SEED`` parameter as an integer: 7, "7" and 7.0 are fine; 1.9, "abc" or True are refused."""
    if isinstance(value, bool):
        raise ValueError(f"SEED must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"SEED must be a whole number such as 42, not {value!r}")


def default_artifact_dir(preset: str, dataset: str, data_dir: Path) -> Path:
    """``artifacts/<PROFILE>/<DATASET>``; custom data is named after its folder (``.../beauty-custom``), so two
    data sets never share one output folder."""
    name = f"{data_dir.name}-custom" if dataset == "custom" else dataset
    return project_root() / "artifacts" / preset / name


def resolve_config(
    preset: str,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    artifact_dir: str | Path | None = None,
    seed: object = 42,
    overrides: str = "",
) -> RunConfig:
    """Turn a notebook's ``parameters`` cell into a :class:`RunConfig`.

    ``preset`` is the ``PROFILE`` parameter: tiny, cpu or paper. Empty strings mean "the default": the preset's
    data set, ``data/`` as the download cache and
    ``artifacts/<PROFILE>/<DATASET>/`` for outputs (``<folder>-custom`` for ``DATASET=custom``). ``overrides``
    (the OVERRIDES parameter) changes single settings of the preset for this run (palr_utils.core.overrides).
    """
    run_preset = get_preset(preset)
    dataset = dataset or run_preset.default_dataset
    if dataset not in DATASETS:
        raise ValueError(f"Unknown DATASET {dataset!r}; choose one of {list(DATASETS)}.")
    if dataset == "custom" and not data_dir:
        raise ValueError("DATASET='custom' needs DATA_DIR: the folder that holds your interactions.tsv and items.tsv.")
    root = project_root()
    resolved_data_dir = _resolve_path(data_dir, root / "data")
    seed = parse_seed(seed)
    return RunConfig(
        # one SEED drives every random choice, the retrievers' training too; OVERRIDES come last
        preset=run_preset.with_seed(seed).with_overrides(overrides),
        dataset=dataset,
        data_dir=resolved_data_dir,
        artifact_dir=_resolve_path(artifact_dir, default_artifact_dir(preset, dataset, resolved_data_dir)),
        seed=seed,
    )

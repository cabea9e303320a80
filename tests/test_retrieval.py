"""Retrievers: sequences, the interface's guarantees, training/resume, SASRec's causality, candidates."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from palr_utils.core.constants import ITEM, SPLIT, TIMESTAMP, USER
from palr_utils.core.io import StaleArtifactError
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.retrieval import (
    Popularity,
    SASRec,
    SASRecConfig,
    SequenceData,
    TrainingConfig,
    build_baselines,
    export_candidates,
    load_trained,
    recall_at_k,
    train,
)
from palr_utils.retrieval import training as training_module
from palr_utils.retrieval.candidates import training_prefix
from palr_utils.retrieval.sequences import left_pad, length_grouped_batches, next_item_batches, training_windows
from palr_utils.retrieval.training import cosine_schedule, planned_epochs, weights_fingerprint

FAST = TrainingConfig(epochs=4, batch_size=16, learning_rate=3e-3, eval_every=2, patience=5)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> SequenceData:
    folder = write_synthetic(
        tmp_path_factory.mktemp("syn") / "d", SyntheticConfig(n_users=80, n_items=150, max_history=30), seed=0
    )
    processed = preprocess(load_movielens(folder))
    return SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)


def test_sequence_data_splits_and_masks():
    rows = [(0, i, t) for t, i in enumerate([3, 1, 2, 0])] + [(1, i, t) for t, i in enumerate([2, 3, 1])]
    frame = pd.DataFrame(rows, columns=[USER, ITEM, TIMESTAMP])
    frame[SPLIT] = ["train", "train", "valid", "test", "train", "valid", "test"]
    data = SequenceData.from_interactions(frame, n_users=2, n_items=4)
    assert data.train[0].tolist() == [3, 1] and data.valid.tolist() == [2, 3] and data.test.tolist() == [0, 1]
    assert data.history(0, "test").tolist() == [3, 1, 2]
    assert data.seen_mask(np.array([0]), "valid").tolist() == [[False, True, False, True]]
    with pytest.raises(ValueError, match="unknown user"):
        data.check_users(np.array([2]))


def test_left_pad_keeps_the_most_recent_items():
    assert left_pad([np.array([5, 6, 7]), np.array([1])], 2).tolist() == [[7, 8], [0, 2]]
    # fit_longest: only as wide as the longest sequence, never wider than max_len
    assert left_pad([np.array([5, 6]), np.array([1])], 4, fit_longest=True).tolist() == [[6, 7], [0, 2]]
    assert left_pad([np.array([5, 6, 7]), np.array([1])], 2, fit_longest=True).tolist() == [[7, 8], [0, 2]]


def test_length_grouped_batches_hold_every_window_once_with_similar_lengths_and_positions():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 200, size=1000)
    batches = length_grouped_batches(lengths, np.random.default_rng(1), batch_size=32, batches_per_group=5)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert len(batches) == pytest.approx(1000 / 32, abs=2)  # about as many steps as batches of 32 windows
    # each batch holds about 32 average windows' worth of positions: more windows when they are short
    positions = np.array([lengths[b].sum() for b in batches])
    # (the last, partial group of windows is rounded to whole batches, which may make one batch larger)
    assert positions.min() > 0.75 * 32 * lengths.mean() and positions.max() < 1.5 * 32 * lengths.mean()
    assert len(min(batches, key=lambda b: lengths[b].mean())) > 32 > len(max(batches, key=lambda b: lengths[b].mean()))
    grouped_padding = np.mean([lengths[b].max() - lengths[b].mean() for b in batches])
    random_batches = np.array_split(rng.permutation(1000), len(batches))
    random_padding = np.mean([lengths[b].max() - lengths[b].mean() for b in random_batches])
    assert grouped_padding < random_padding / 3
    # a new epoch (another RNG state) gives other batches
    again = length_grouped_batches(lengths, np.random.default_rng(2), batch_size=32, batches_per_group=5)
    assert [b.tolist() for b in again] != [b.tolist() for b in batches]


def test_training_windows_make_every_interaction_a_target_once():
    sequence = np.arange(100, 123)  # 23 items, windows of max_len + 1 = 6 items
    windows = training_windows(sequence, max_len=5, all_windows=True)
    assert windows[0].tolist() == list(range(117, 123))  # the most recent window comes first
    targets = sorted(int(t) for w in windows for t in w[1:])
    assert targets == list(range(101, 123))  # every item but the very first is predicted exactly once
    assert all(2 <= len(w) <= 6 for w in windows)
    assert [w.tolist() for w in training_windows(sequence, 5, all_windows=False)] == [list(range(117, 123))]
    assert [w.tolist() for w in training_windows(np.array([4, 5]), 5, all_windows=True)] == [[4, 5]]


def test_next_item_batches_shift_targets_by_one(small_data):
    batches = next_item_batches(small_data, np.random.default_rng(0), 16, max_len=8, all_windows=True)
    inputs, targets = next(iter(batches))
    real = targets > 0
    # the target at position t is the input at position t + 1 of the same window
    assert torch.equal(inputs[:, 1:] * real[:, :-1], targets[:, :-1] * real[:, :-1])
    n_windows = sum(len(training_windows(s, 8, True)) for s in small_data.train)
    assert sum(len(b[0]) for b in batches) == n_windows > small_data.n_users
    assert len(batches) == len(list(batches)) == math.ceil(n_windows / 16)


def test_length_grouped_next_item_batches_are_as_wide_as_their_longest_window(small_data):
    batches = next_item_batches(small_data, np.random.default_rng(0), 16, max_len=8, all_windows=True,
                                group_by_length=True)  # fmt: skip
    widths = [inputs.shape[1] for inputs, _ in batches]
    assert max(widths) == 8 and min(widths) < 8
    for inputs, targets in batches:
        assert (inputs[:, 0] > 0).any() and inputs.shape == targets.shape  # no column is padding only
    n_windows = sum(len(training_windows(s, 8, True)) for s in small_data.train)
    assert sum(len(b[0]) for b in batches) == n_windows


def test_top_k_masks_seen_items_caps_k_and_refuses_unknown_users(small_data):
    model = Popularity().fit(small_data)
    items, _ = model.top_k(np.array([0, 1]), 5, "test")
    for row, user in enumerate([0, 1]):
        assert not set(items[row]) & set(small_data.history(user, "test").tolist())
    with pytest.warns(UserWarning, match="exceeds"):
        items, _ = model.top_k(np.array([0]), small_data.n_items + 10, "valid")
    assert items.shape[1] == small_data.n_items - len(small_data.history(0, "valid"))
    with pytest.raises(ValueError, match="unknown user"):
        model.top_k(np.array([small_data.n_users]), 5, "test")


def test_sasrec_is_causal():
    model = SASRec(n_items=20, config=SASRecConfig(max_len=6, hidden_size=16)).eval()
    history = torch.tensor([[0, 3, 4, 5, 6, 7]])
    changed_future = history.clone()
    changed_future[0, -1] = 12
    before, after = model.encode(history), model.encode(changed_future)
    assert torch.allclose(before[0, :-1], after[0, :-1])  # earlier positions cannot see the last item
    assert not torch.allclose(before[0, -1], after[0, -1])


def test_sasrec_output_does_not_depend_on_how_much_padding_a_batch_has():
    model = SASRec(n_items=20, config=SASRecConfig(max_len=8, hidden_size=16, n_heads=2)).eval()
    histories = [np.array([3, 4, 5]), np.array([1, 2, 6, 7, 9])]
    full_width = model.encode(left_pad(histories, 8))  # padded to max_len
    fitted = model.encode(left_pad(histories, 8, fit_longest=True))  # padded to the longest history (5)
    assert fitted.shape[1] == 5
    assert torch.allclose(full_width[:, -5:], fitted, atol=1e-5)
    alone = model.encode(left_pad(histories[:1], 8, fit_longest=True))  # no padding at all
    assert torch.allclose(alone[0], full_width[0, -3:], atol=1e-5)
    assert not torch.isnan(full_width).any()  # padding rows attend to themselves, not to nothing


def test_ranks_batch_users_by_history_length_and_return_them_in_the_callers_order(small_data):
    model = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16)).eval()
    model.data = small_data
    users = np.random.default_rng(0).permutation(small_data.n_users)[:30]
    one_by_one = np.concatenate([model.ranks("test", np.array([u]), batch_size=1) for u in users])
    assert model.ranks("test", users, batch_size=7).tolist() == one_by_one.tolist()


def test_attention_dropout_is_its_own_setting():
    default = SASRec(n_items=20, config=SASRecConfig(max_len=6, hidden_size=16, dropout=0.3))
    assert default.blocks[0].attention.dropout == 0.3 and "attention_dropout" not in default.describe()
    without = SASRec(n_items=20, config=SASRecConfig(max_len=6, hidden_size=16, dropout=0.3, attention_dropout=0.0))
    assert without.blocks[0].attention.dropout == 0.0 and without.describe()["attention_dropout"] == 0.0
    assert without.blocks[0].feed_forward[2].p == 0.3  # the feed-forward dropout is unchanged


@pytest.mark.integration
def test_training_learns_resumes_and_refuses_other_checkpoints(small_data, tmp_path):
    model = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16))
    history = train(model, small_data, FAST, tmp_path, progress=False)
    assert history["epoch"].tolist() == [2, 4]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]

    longer = TrainingConfig(**{**FAST.__dict__, "epochs": 6})
    resumed = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16))
    history = train(resumed, small_data, longer, tmp_path, progress=False)
    assert history["epoch"].tolist() == [2, 4, 6]  # continued from epoch 4, not from scratch
    assert resumed.stop_reason == "epochs"

    other = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=32))
    with pytest.raises(StaleArtifactError, match="Delete the folder"):
        train(other, small_data, longer, tmp_path, progress=False)

    # a checkpoint of an older format (no stop_reason) is refused with what to do, not read by guesswork
    state = json.loads((tmp_path / "state.json").read_text())
    del state["stop_reason"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(StaleArtifactError, match="older version.*Delete the folder and rerun"):
        train(resumed, small_data, longer, tmp_path, progress=False)


@pytest.mark.integration
def test_a_warm_started_training_continues_the_twin_and_resumes_only_from_the_same_start(small_data, tmp_path):
    config = SASRecConfig(max_len=20, hidden_size=16)
    twin = SASRec(small_data.n_items, config)
    train(twin, small_data.one_step_back(), FAST, tmp_path / "twin", progress=False)
    twin.data = small_data  # the twin's weights reading the full histories
    reloaded = load_trained(SASRec(small_data.n_items, config), small_data, tmp_path / "twin")  # no training
    assert weights_fingerprint(reloaded) == weights_fingerprint(twin) and reloaded.data is small_data
    with pytest.raises(FileNotFoundError, match="Run the notebook that trains it"):
        load_trained(SASRec(small_data.n_items, config), small_data, tmp_path / "nothing")
    before = twin.evaluate("valid")["ndcg@10"]

    continued = SASRec(small_data.n_items, config)
    continued.load_state_dict(twin.state_dict())
    short = TrainingConfig(**{**FAST.__dict__, "epochs": 2, "eval_every": 1, "learning_rate": 1e-3})
    history = train(continued, small_data, short, tmp_path / "sasrec", progress=False, warm_start=True)
    assert history["epoch"].tolist() == [1, 2] and continued.best_epoch in (1, 2)
    state = json.loads((tmp_path / "sasrec" / "state.json").read_text())
    assert state["identity"]["starts_from"] == weights_fingerprint(twin)  # which weights it continued
    assert max(history["val_ndcg@10"]) >= before - 0.05  # continued from the twin, not drawn afresh

    again = SASRec(small_data.n_items, config)  # the same start: the finished checkpoint is reused
    again.load_state_dict(twin.state_dict())
    reused = train(again, small_data, short, tmp_path / "sasrec", progress=False, warm_start=True)
    pd.testing.assert_frame_equal(reused[history.columns], history)
    fresh = SASRec(small_data.n_items, config)  # another start (a retrained twin, fresh weights): refused
    with pytest.raises(StaleArtifactError, match="Delete the folder"):
        train(fresh, small_data, short, tmp_path / "sasrec", progress=False, warm_start=True)
    with pytest.raises(StaleArtifactError):  # nor is it a from-scratch training's checkpoint
        train(fresh, small_data, short, tmp_path / "sasrec", progress=False)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["bpr_mf", "ncf", "gru4rec", "caser"])
def test_each_baseline_trains_scores_every_item_and_reuses_its_checkpoint(small_data, name, tmp_path):
    model = build_baselines(small_data.n_users, small_data.n_items, max_len=20)[name]
    history = train(model, small_data, FAST, tmp_path, progress=False)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    scores = model.score(np.array([0, 1, 2]), "test")
    assert scores.shape == (3, small_data.n_items) and torch.isfinite(scores).all()
    # the same configuration finds its finished checkpoint (NCF's layer sizes, a tuple, come back as a list)
    again = build_baselines(small_data.n_users, small_data.n_items, max_len=20)[name]
    assert train(again, small_data, FAST, tmp_path, progress=False)["epoch"].tolist() == history["epoch"].tolist()


def test_a_seeded_baseline_starts_from_the_same_weights_whatever_drew_before_it():
    first = build_baselines(9, 30, max_len=20, seed=7)
    torch.rand(1000)  # what SASRec's training does to the generator in notebook 03
    second = build_baselines(9, 30, max_len=20, seed=7)
    for name, model in first.items():
        for (key, weight), again in zip(model.state_dict().items(), second[name].state_dict().values(), strict=True):
            assert torch.equal(weight, again), (name, key)
    unseeded = build_baselines(9, 30, max_len=20)
    assert not torch.equal(unseeded["bpr_mf"].state_dict()["user_embedding.weight"],
                           first["bpr_mf"].state_dict()["user_embedding.weight"])  # fmt: skip


def test_a_preset_can_give_one_baseline_another_model_configuration():
    from palr_utils.retrieval import NCFConfig

    models = build_baselines(9, 30, max_len=20, configs={"ncf": NCFConfig(negatives_per_positive=8)})
    assert models["ncf"].config.negatives_per_positive == 8
    assert models["bpr_mf"].config == build_baselines(9, 30)["bpr_mf"].config  # the others keep their defaults
    with pytest.raises(ValueError, match="no baseline called 'neumf'"):
        build_baselines(9, 30, configs={"neumf": NCFConfig()})


def test_baseline_config_names_what_build_baselines_would_use():
    from palr_utils.retrieval import NCFConfig, baseline_config

    variant = NCFConfig(dropout=0.3)
    assert baseline_config("ncf", configs={"ncf": variant}) is variant
    assert baseline_config("ncf") == build_baselines(9, 30)["ncf"].config
    assert baseline_config("gru4rec", max_len=20).max_len == 20
    with pytest.raises(ValueError, match="no baseline called 'neumf'"):
        baseline_config("neumf")


def test_ncf_scores_every_item_exactly_as_its_forward_pass_would():
    from palr_utils.retrieval.ncf import NCFConfig, NeuMF

    torch.manual_seed(0)
    model = NeuMF(7, 300, NCFConfig(embedding_size=8, mlp_sizes=(16, 8))).eval()
    for table in (model.gmf_user, model.gmf_item, model.mlp_user, model.mlp_item):
        torch.nn.init.normal_(table.weight)  # away from the near-zero start, so that every term matters
    users = np.array([4, 0, 6, 0])
    with torch.no_grad():
        fast = model._score(users, "test")
        pairwise = model(torch.as_tensor(users).repeat_interleave(300), torch.arange(300).repeat(4)).view(4, 300)
    torch.testing.assert_close(fast, pairwise, rtol=1e-5, atol=1e-5)


@pytest.mark.integration
def test_learning_rate_decays_on_a_plateau_and_resumes_with_it(small_data, tmp_path):
    def stalled_model():  # validation never improves after the first evaluation
        model = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16))
        model.evaluate = lambda split: {"hr@10": 0.2, "ndcg@10": 0.1}
        return model

    config = TrainingConfig(epochs=6, batch_size=16, learning_rate=1e-3, eval_every=2, patience=10,
                            lr_decay_factor=0.5, lr_decay_patience=0, bf16_autocast=True)  # fmt: skip
    history = train(stalled_model(), small_data, TrainingConfig(**{**config.__dict__, "epochs": 4}), tmp_path,
                    progress=False)  # fmt: skip
    assert history["learning_rate"].tolist() == pytest.approx([1e-3, 5e-4])
    # resumes at epoch 4, also with bf16 autocast decided by the machine: it changes speed, not the weights
    resumed_config = TrainingConfig(**{**config.__dict__, "bf16_autocast": "auto"})
    history = train(stalled_model(), small_data, resumed_config, tmp_path, progress=False)
    assert history["learning_rate"].tolist() == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_cosine_schedule_warms_up_then_decays_to_zero():
    multiplier = cosine_schedule(10, TrainingConfig(epochs=5, lr_schedule="cosine", warmup_epochs=1))
    assert [multiplier(step) for step in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # 10 warm-up steps
    assert multiplier(10) == pytest.approx(1.0) and multiplier(30) == pytest.approx(0.5)  # halfway: 20 of 40 steps
    assert multiplier(49) > 0 and multiplier(50) == pytest.approx(0.0) and multiplier(80) == pytest.approx(0.0)
    decay = [multiplier(step) for step in range(10, 51)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    with pytest.raises(ValueError, match="one learning-rate policy"):
        TrainingConfig(lr_schedule="cosine", lr_decay_factor=0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainingConfig(lr_schedule="linear")


def test_a_schedule_fitted_to_the_budget_plans_the_epochs_it_holds():
    config = TrainingConfig(epochs=35, lr_schedule="cosine", max_minutes=20, fit_epochs_to_budget=True)
    assert planned_epochs(config, 2, 100.0) == 24  # 50 s an epoch: 24 of them fit 20 minutes, not 24.5
    assert planned_epochs(config, 2, 20.0) == 35  # a fast machine: never more than asked
    assert planned_epochs(config, 2, 1300.0) == 2  # over budget already: the epochs done
    schedule = cosine_schedule(10, config)
    schedule.plan(24)
    assert schedule(240) == pytest.approx(0.0) and schedule(120) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs lr_schedule='cosine' and max_minutes"):
        TrainingConfig(lr_schedule="cosine", fit_epochs_to_budget=True)
    with pytest.raises(ValueError, match="needs lr_schedule='cosine' and max_minutes"):
        TrainingConfig(max_minutes=5, fit_epochs_to_budget=True)


@pytest.mark.integration
def test_a_fitted_schedule_ends_at_zero_and_a_resumed_run_keeps_its_horizon(small_data, tmp_path, monkeypatch):
    config = TrainingConfig(epochs=6, batch_size=16, learning_rate=1e-3, eval_every=2, patience=10,
                            lr_schedule="cosine", max_minutes=60, fit_epochs_to_budget=True)  # fmt: skip
    sasrec = SASRecConfig(max_len=20, hidden_size=16)
    paces = []

    def slow_machine(config, epochs_done, seconds):  # as if 60 minutes held 4 epochs at this pace
        paces.append(epochs_done)
        return 4

    monkeypatch.setattr(training_module, "planned_epochs", slow_machine)
    fitted = SASRec(small_data.n_items, sasrec)
    history = train(fitted, small_data, config, tmp_path, progress=False)
    assert paces == [2]  # measured once, at the first validation
    assert history["epoch"].tolist() == [2, 4] and history["learning_rate"].iloc[-1] == pytest.approx(0.0)
    # epoch 2 ran along the 6-epoch cosine (a third of the way down), epochs 3-4 along the rest of the 4-epoch one
    assert history["learning_rate"].iloc[0] == pytest.approx(7.5e-4)
    assert (fitted.stop_reason, fitted.planned_epochs, fitted.epochs_run) == ("epochs", 4, 4)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["planned_epochs"] == 4
    # the finished run is read back, not trained on to epoch 6, and the horizon is not measured again
    again = SASRec(small_data.n_items, sasrec)
    assert train(again, small_data, config, tmp_path, progress=False)["epoch"].tolist() == [2, 4]
    assert paces == [2] and again.planned_epochs == 4
    # without the option: the identity of older checkpoints, so they stay valid
    plain = TrainingConfig(**{**config.__dict__, "fit_epochs_to_budget": False})
    assert "fit_epochs_to_budget" not in training_module._identity(again, small_data, plain)["training"]
    with pytest.raises(StaleArtifactError):
        train(SASRec(small_data.n_items, sasrec), small_data, plain, tmp_path, progress=False)


def _crash_in_the_third_epoch(small_data, sasrec, config, folder) -> None:
    """Train until the third epoch's second batch, after the checkpoint of epoch 2, and die there."""
    batches = SASRec(small_data.n_items, sasrec).batches(small_data, np.random.default_rng(0), config.batch_size)
    steps_per_epoch = len(batches)
    interrupted = SASRec(small_data.n_items, sasrec)
    real_loss, calls = interrupted.loss, []

    def loss_then_crash(batch):
        calls.append(1)
        if len(calls) > 2 * steps_per_epoch + 1:
            raise KeyboardInterrupt
        return real_loss(batch)

    interrupted.loss = loss_then_crash
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, small_data, config, folder, progress=False)


@pytest.mark.integration
def test_a_run_interrupted_after_planning_resumes_along_the_planned_cosine(small_data, tmp_path, monkeypatch):
    config = TrainingConfig(epochs=6, batch_size=16, learning_rate=1e-3, eval_every=2, patience=10,
                            lr_schedule="cosine", max_minutes=60, fit_epochs_to_budget=True)  # fmt: skip
    sasrec = SASRecConfig(max_len=20, hidden_size=16)
    monkeypatch.setattr(training_module, "planned_epochs", lambda config, epochs_done, seconds: 4)
    _crash_in_the_third_epoch(small_data, sasrec, config, tmp_path)  # after the plan and epoch 2's checkpoint
    resumed = SASRec(small_data.n_items, sasrec)
    history = train(resumed, small_data, config, tmp_path, progress=False)
    # along the 6-epoch cosine epoch 4 would end at a quarter of the rate; the planned one ends at zero
    assert history["epoch"].tolist() == [2, 4] and history["learning_rate"].iloc[-1] == pytest.approx(0.0)
    assert (resumed.stop_reason, resumed.planned_epochs) == ("epochs", 4)


@pytest.mark.integration
def test_cosine_schedule_steps_every_batch_and_resumes_where_it_stopped(small_data, tmp_path):
    config = TrainingConfig(epochs=4, batch_size=16, learning_rate=1e-3, eval_every=2, lr_schedule="cosine")
    sasrec = SASRecConfig(max_len=20, hidden_size=16)
    _crash_in_the_third_epoch(small_data, sasrec, config, tmp_path)
    history = train(SASRec(small_data.n_items, sasrec), small_data, config, tmp_path, progress=False)
    # epoch 2 ends halfway down the cosine; had the schedule restarted, epoch 4 would end there too
    assert history["epoch"].tolist() == [2, 4]
    assert history["learning_rate"].tolist() == pytest.approx([5e-4, 0.0])
    longer = TrainingConfig(**{**config.__dict__, "epochs": 8})  # another schedule altogether
    with pytest.raises(StaleArtifactError):
        train(SASRec(small_data.n_items, sasrec), small_data, longer, tmp_path, progress=False)


@pytest.mark.integration
def test_bce_variant_of_sasrec_trains(small_data):
    model = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16, loss="bce"))
    history = train(model, small_data, FAST, progress=False)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


@pytest.mark.integration
def test_candidates_cover_three_histories_without_seen_items_and_recall_matches_ranks(small_data):
    model = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16))
    train(model, small_data, FAST, progress=False)
    candidates = export_candidates(model, small_data, k=10, n_targets=3)
    assert candidates.groupby(SPLIT)[USER].nunique().to_dict() == {
        s: small_data.n_users for s in ("test", "train", "valid")
    }
    assert (candidates.groupby([SPLIT, USER]).size() == 10).all()
    for user in range(small_data.n_users):
        test_items = candidates[(candidates[SPLIT] == "test") & (candidates[USER] == user)][ITEM]
        assert not set(test_items) & set(small_data.history(user, "test").tolist())
        prefix, _ = training_prefix(small_data.train[user], 3)
        train_items = candidates[(candidates[SPLIT] == "train") & (candidates[USER] == user)][ITEM]
        assert not set(train_items) & set(prefix.tolist())
    ranks = model.ranks("test")
    assert recall_at_k(candidates, small_data, "test") == pytest.approx(np.mean(ranks < 10))


def test_training_prefix_leaves_at_least_one_item():
    prefix, targets = training_prefix(np.arange(12), 10)
    assert prefix.tolist() == [0, 1] and targets.tolist() == list(range(2, 12))
    prefix, targets = training_prefix(np.arange(3), 10)
    assert prefix.tolist() == [0] and targets.tolist() == [1, 2]


def test_bf16_autocast_auto_asks_the_cpu():
    from palr_utils.core.devices import cpu_supports_bf16

    assert TrainingConfig(bf16_autocast="auto").uses_bf16() == cpu_supports_bf16()
    assert TrainingConfig(bf16_autocast=True).uses_bf16() and not TrainingConfig().uses_bf16()


def test_answer_rate_counts_answers_in_the_top_k_after_each_history_in_batches():
    class Fixed:  # item 2 always scores highest, then 1, then 0
        def score_histories(self, histories):
            return torch.tensor([[0.0, 1.0, 2.0, -1.0]] * len(histories))

    from palr_utils.retrieval.candidates import answer_rate

    histories = [np.array([3]), np.array([2]), np.array([0])]  # the second user has seen item 2: masked
    assert answer_rate(Fixed(), histories, np.array([2, 2, 1]), k=2, batch_size=2) == pytest.approx(2 / 3)


def test_steps_back_cuts_each_history_and_leaves_users_without_such_a_prefix_empty():
    data = SequenceData(3, 9, [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([7])], np.array([8, 0, 1]),
                        np.array([2, 3, 4]))  # fmt: skip
    one, two = data.steps_back(1), data.steps_back(2)
    assert [t.tolist() for t in one.train] == [[1, 2, 3], [5], []] and one.valid.tolist() == [4, 6, -1]
    assert one.test.tolist() == [8, 0, -1]  # one step back: the validation item becomes the test target
    assert [t.tolist() for t in two.train] == [[1, 2], [], []] and two.valid.tolist() == [3, -1, -1]
    assert two.test.tolist() == [4, -1, -1] and two.with_prefix().tolist() == [0]
    assert data.with_prefix().tolist() == [0, 1, 2] and one.with_prefix().tolist() == [0, 1]
    with pytest.raises(ValueError, match="at least 1"):
        data.steps_back(0)


def test_rank_candidates_follow_each_cut_history_and_the_first_cut_is_the_twins_validation_export(small_data):
    from palr_utils.retrieval.candidates import STEPS_BACK, export_rank_candidates, top_k_after_histories

    back = small_data.one_step_back()
    twin = SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16))
    train(twin, back, FAST, progress=False)
    rows = export_rank_candidates(twin, small_data, k=6, prefixes=3)
    assert sorted(rows[STEPS_BACK].unique()) == [1, 2, 3] and set(rows[SPLIT]) == {"valid"}
    first = rows[rows[STEPS_BACK] == 1].drop(columns=STEPS_BACK).reset_index(drop=True)
    alone = export_candidates(twin, back, k=6, splits=("valid",)).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, alone)  # prefixes=1 exports what notebook 03 always exported
    third = small_data.steps_back(3)
    for user in third.with_prefix()[:5]:
        listed = rows[(rows[STEPS_BACK] == 3) & (rows[USER] == user)].sort_values("rank")[ITEM].tolist()
        expected, _ = top_k_after_histories(twin, [third.train[user]], 6)
        assert listed == expected[0].tolist() and not set(listed) & set(third.train[user].tolist())

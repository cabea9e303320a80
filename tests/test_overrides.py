"""OVERRIDES: one setting of a preset changed for one run, parsed strictly, applied last, recorded."""

from __future__ import annotations

import pytest

from palr_utils.core.overrides import OverrideError, format_overrides, parse_overrides
from palr_utils.presets import resolve_config


def test_values_are_json_or_plain_text():
    assert parse_overrides('a.b=20 c=0.5 d=true e=null f=["x","y"] g=cosine') == (
        ("a.b", 20), ("c", 0.5), ("d", True), ("e", None), ("f", ["x", "y"]), ("g", "cosine"),
    )  # fmt: skip
    assert parse_overrides("") == ()


def test_dotted_keys_reach_nested_settings_with_their_types():
    preset = resolve_config("cpu", overrides=(
        "sasrec_training.max_minutes=20 finetune.lora_r=16 llm.name=huggyllama/llama-7b "
        "finetune.target_modules=q_proj,k_proj sasrec.attention_dropout=null fusion_weights=0,0.5,1"
    )).preset  # fmt: skip
    assert preset.sasrec_training.max_minutes == 20.0 and isinstance(preset.sasrec_training.max_minutes, float)
    assert preset.finetune.lora_r == 16 and preset.llm.name == "huggyllama/llama-7b"
    assert preset.finetune.target_modules == ("q_proj", "k_proj") and preset.sasrec.attention_dropout is None
    assert preset.fusion_weights == (0.0, 0.5, 1.0)
    assert preset.sasrec_training.epochs == resolve_config("cpu").preset.sasrec_training.epochs  # the rest kept


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("sasrec_training.max_minute=2", r"no setting 'sasrec_training.max_minute'; it has \[.*'max_minutes'"),
        ("sasrec_training.epochs=2.5", "epochs takes int, not 2.5"),
        ("finetune.lora_r=abc", "lora_r takes int, not 'abc'"),
        ("llm.load_in_4bit=1", "load_in_4bit takes bool, not 1"),
        ("sasrec=3", "sasrec is a group of settings"),
        ("sasrec.max_len.x=3", "max_len is a single setting"),
        ("sasrec_training.seed=3", "use SEED"),
        ("nokey", "is not key=value"),
        ("sasrec_training.lr_schedule=linear", "lr_schedule must be None or 'cosine'"),  # the settings' own check
    ],
)
def test_unknown_keys_and_wrong_types_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("cpu", overrides=overrides)


def test_an_override_wins_over_a_data_sets_settings_and_is_kept_in_the_record():
    config = resolve_config("cpu", overrides="sasrec_training.max_minutes=20 sasrec.max_len=100")
    beauty = config.preset.for_data({"paper_dataset": "beauty"})
    assert beauty.sasrec_training.max_minutes == 20 and beauty.sasrec.max_len == 100
    assert beauty.sasrec.dropout == 0.5  # Beauty's own setting where no override names it
    assert config.record() == {"profile": "cpu", "overrides": "sasrec_training.max_minutes=20 sasrec.max_len=100"}
    assert resolve_config("cpu", overrides=config.overrides).preset == config.preset  # the record reproduces it


def test_an_override_changes_the_identity_of_what_it_trains():
    from datasets import Dataset

    from palr_utils.finetune.sft import run_identity

    rows = Dataset.from_dict({"prompt": ["p"], "completion": ["c"]})
    plain, changed = (resolve_config("cpu", overrides=o).preset for o in ("", "finetune.lora_r=16"))
    identities = [run_identity(p.llm, p.finetune, rows, 42) for p in (plain, changed)]
    assert identities[0]["finetune"]["lora_r"] == 8 and identities[1]["finetune"]["lora_r"] == 16


def test_format_round_trips():
    pairs = parse_overrides('a=1 b=x c=["p","q"] d=null')
    assert parse_overrides(format_overrides(pairs)) == pairs


def test_the_runner_refuses_a_misspelt_override_before_any_notebook(tmp_path):
    from palr_utils.course.runner import run_notebooks

    with pytest.raises(OverrideError, match="no setting"):
        run_notebooks("tiny", artifact_dir=str(tmp_path / "out"), notebooks=[], overrides="sasrec.hidden=3")
    assert not (tmp_path / "out").exists()


def test_a_baselines_own_settings_are_reached_by_name_and_start_from_what_it_uses_now():
    preset = resolve_config("cpu", overrides="baseline_training_by_model.ncf.weight_decay=1e-6 "
                                              "baseline_models.ncf.negatives_per_positive=8").preset  # fmt: skip
    assert preset.baseline_settings("ncf").weight_decay == 1e-6
    assert preset.baseline_settings("ncf").max_minutes == preset.baseline_training.max_minutes  # the rest as before
    assert preset.baseline_models["ncf"].negatives_per_positive == 8
    assert preset.baseline_settings("caser").weight_decay == 0.0  # another model's entry is untouched
    # on Beauty the entry is Beauty's own (15 minutes for NCF), with the override applied after it
    beauty = preset.for_data({"paper_dataset": "beauty"})
    assert beauty.baseline_settings("ncf").weight_decay == 1e-6 and beauty.baseline_settings("ncf").max_minutes == 15


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("baseline_training_by_model.nfc.weight_decay=1e-6", "no baseline called 'nfc'"),
        ("baseline_training_by_model.ncf=1", "name a setting of baseline_training_by_model.ncf"),
        ("baseline_training_by_model=1", "holds settings by name"),
        ("baselines=sasrec", "no baseline called 'sasrec'"),
    ],
)
def test_settings_by_name_and_the_list_of_baselines_refuse_unknown_names(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("cpu", overrides=overrides)


def test_the_baselines_notebook_03_trains_can_be_fewer():
    from palr_utils.retrieval import build_baselines

    assert resolve_config("tiny").preset.baselines == ("bpr_mf", "ncf", "gru4rec", "caser")
    preset = resolve_config("tiny", overrides="baselines=[]").preset
    assert build_baselines(10, 20, names=preset.baselines) == {}
    assert list(build_baselines(10, 20, names=("caser", "ncf"))) == ["ncf", "caser"]  # Table 2's order


def test_a_second_training_seed_is_its_own_run_and_seed_offset_0_is_the_old_identity():
    from datasets import Dataset

    from palr_utils.finetune.sft import run_identity, training_seed

    rows = Dataset.from_dict({"prompt": ["p"], "completion": ["c"]})
    plain, second = (resolve_config("cpu", overrides=o).preset for o in ("", "rank_finetune.seed_offset=1"))
    assert "seed_offset" not in run_identity(plain.llm, plain.rank_finetune, rows, 42)["finetune"]
    assert run_identity(second.llm, second.rank_finetune, rows, 42)["finetune"]["seed_offset"] == 1
    assert training_seed(plain.rank_finetune, 42) == 42 and training_seed(second.rank_finetune, 42) == 43
    assert second.finetune == plain.finetune  # PALR_v1/v2 keep their seed
    with pytest.raises(ValueError, match="seed_offset must be 0 or more"):
        resolve_config("cpu", overrides="rank_finetune.seed_offset=-1")

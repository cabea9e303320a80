from pathlib import Path

import pytest

from palr_utils.core.paths import project_root
from palr_utils.presets import PRESETS, resolve_config


def test_three_named_presets_exist():
    assert set(PRESETS) == {"tiny", "cpu", "paper"}
    assert PRESETS["tiny"].default_dataset == "synthetic"
    assert PRESETS["cpu"].default_dataset == "ml-1m"


def test_empty_parameters_take_the_defaults():
    config = resolve_config("tiny", "", "", "", 7)
    assert config.dataset == "synthetic"
    assert config.data_dir == project_root() / "data"
    assert config.artifact_dir == project_root() / "artifacts" / "tiny" / "synthetic"
    assert config.metrics_dir == config.artifact_dir / "metrics"
    assert config.seed == 7


def test_relative_paths_start_at_the_repository_root():
    config = resolve_config("cpu", "custom", "../shared/data/ml-1m", "/tmp/out")
    assert config.data_dir == (project_root() / "../shared/data/ml-1m").resolve()
    assert config.artifact_dir == Path("/tmp/out")


@pytest.mark.parametrize(
    "preset, dataset, message", [("huge", "", "Unknown PROFILE"), ("tiny", "netflix", "Unknown DATASET")]
)
def test_unknown_names_are_refused_with_the_choices(preset, dataset, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(preset, dataset)


def test_the_reranked_list_is_as_long_as_the_training_lists_and_fits_the_export():
    import dataclasses

    from palr_utils.finetune.instructions import InstructionConfig
    from palr_utils.presets import PRESETS

    for preset in PRESETS.values():
        assert preset.rerank_candidates == preset.instructions.n_candidates <= preset.n_exported_candidates
    with pytest.raises(ValueError, match="instructions.n_candidates"):
        dataclasses.replace(PRESETS["tiny"], instructions=InstructionConfig(n_candidates=60))


def test_random_negatives_and_prefixes_are_refused_beyond_what_the_lists_hold():
    import dataclasses

    cpu = PRESETS["cpu"]
    assert dataclasses.replace(cpu, rank_random_negatives=9).rank_random_negatives == 9
    with pytest.raises(ValueError, match="exclude each other"):
        dataclasses.replace(cpu, rank_random_negatives=5, rank_residual=True)
    with pytest.raises(ValueError, match="the answer keeps a place"):
        dataclasses.replace(cpu, rank_random_negatives=cpu.rerank_candidates)
    assert dataclasses.replace(cpu, rank_prefixes=3).rank_prefixes == 3
    with pytest.raises(ValueError, match="training prefixes per user notebook 03 exports"):
        dataclasses.replace(cpu, rank_prefixes=4)


def test_sasrec_continues_from_its_twin_on_movielens_only_and_an_override_turns_it_off():
    cpu = resolve_config("cpu", "", "", "", 7).preset
    ml1m, _ = cpu.fit_to_data({"paper_dataset": "ml-1m"})
    beauty, _ = cpu.fit_to_data({"paper_dataset": "beauty"})
    assert ml1m.sasrec_from_twin.seed == 7 and ml1m.sasrec_from_twin.epochs < ml1m.sasrec_training.epochs
    assert beauty.sasrec_from_twin is None  # not measured on short histories: from scratch
    assert cpu.with_overrides("sasrec_from_twin=null").sasrec_from_twin is None
    assert cpu.with_overrides("sasrec_from_twin.epochs=4").sasrec_from_twin.epochs == 4

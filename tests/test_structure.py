"""How the package is put together: layers that import one way, one seed for every random choice, a device for
every retriever."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from palr_utils.core.devices import resolve_device
from palr_utils.core.paths import project_root
from palr_utils.data import preprocess
from palr_utils.data.movielens import load_movielens
from palr_utils.data.synthetic import SyntheticConfig, write_synthetic
from palr_utils.presets import resolve_config
from palr_utils.retrieval import SASRec, SASRecConfig, SequenceData, TrainingConfig, build_baselines, train

# The stages from the bottom up: a folder (or module) may import those before it, never one after it.
LAYERS = ("core", "data", "retrieval", "llm", "profiles", "finetune", "palr_rank", "evaluation", "presets", "course")


def test_every_module_of_the_package_has_its_layer():
    root = project_root() / "palr_utils"
    # rules.py belongs to the presets (it chooses their settings)
    found = {path.stem if path.parent == root else path.parent.name for path in root.rglob("*.py")
             if path.parent == root or path.parent.parent == root} - {"__init__", "rules"}  # fmt: skip
    assert found == set(LAYERS), f"modules without a layer: {found - set(LAYERS)}; layers without a module: " \
                                 f"{set(LAYERS) - found}"


@pytest.mark.parametrize("layer", LAYERS[:-1])
@pytest.mark.integration
def test_a_layer_imports_nothing_above_it(layer):
    code = (f"import importlib, json, pkgutil, sys; import palr_utils.{layer} as layer; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(getattr(layer, '__path__', []), "
            "layer.__name__ + '.') if not m.name.endswith('.cli')]; print(json.dumps(sorted(sys.modules)))")
    # (a command line, such as finetune.cli, resolves a preset: it stands on top of every layer)
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))  # fmt: skip
    above = LAYERS[LAYERS.index(layer) + 1 :]
    loaded_above = sorted(m for m in loaded if any(m == f"palr_utils.{a}" or m.startswith(f"palr_utils.{a}.")
                                                   for a in above))  # fmt: skip
    assert not loaded_above, f"palr_utils.{layer} loads {loaded_above}: a lower layer must not import a higher one"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> SequenceData:
    folder = write_synthetic(tmp_path_factory.mktemp("syn") / "d", SyntheticConfig(n_users=40, n_items=60), seed=0)
    processed = preprocess(load_movielens(folder))
    return SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)


def test_the_run_seed_reaches_the_retrievers_training_settings_also_after_a_data_set_override():
    preset = resolve_config("cpu", seed=7).preset
    assert preset.sasrec_training.seed == preset.baseline_training.seed == 7
    beauty = preset.for_data({"paper_dataset": "beauty"})
    assert beauty.sasrec_training.seed == beauty.baseline_settings("bpr_mf").seed == 7
    assert beauty.baseline_settings("gru4rec") == beauty.baseline_training  # no setting of its own


def _trained_weights(data: SequenceData, seed: int) -> torch.Tensor:
    training = resolve_config("tiny", seed=seed).preset.sasrec_training
    torch.manual_seed(0)  # the same initial weights: only the training seed differs between the runs
    model = SASRec(data.n_items, SASRecConfig(max_len=20, hidden_size=16, n_blocks=1))
    train(model, data, TrainingConfig(epochs=2, batch_size=16, eval_every=2, seed=training.seed), progress=False)
    return model.item_embedding.weight.detach().clone()


@pytest.mark.integration
def test_the_same_seed_trains_the_same_model_and_another_seed_another(small_data):
    first, again, other = (_trained_weights(small_data, seed) for seed in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", ["sasrec", "bpr_mf", "ncf", "gru4rec", "caser"])
@pytest.mark.integration
def test_every_retriever_trains_and_ranks_on_the_device_it_is_given(small_data, name):
    model = (SASRec(small_data.n_items, SASRecConfig(max_len=20, hidden_size=16, n_blocks=1)) if name == "sasrec"
             else build_baselines(small_data.n_users, small_data.n_items, max_len=20)[name])  # fmt: skip
    train(model, small_data, TrainingConfig(epochs=1, batch_size=16, device="cpu"), progress=False)
    assert model.device == torch.device("cpu")
    scores = model.score(np.array([0, 1]), "test")  # scores come back on the CPU, whatever the device
    assert scores.device == torch.device("cpu") and scores.dtype == torch.float32


def test_a_gpu_asked_for_where_there_is_none_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="sees no GPU"):
        resolve_device("cuda")


def test_palr_cpu_bf16_0_takes_the_float32_path_on_any_cpu(monkeypatch):
    from palr_utils.core.devices import cpu_supports_bf16
    from palr_utils.llm.loading import LLMConfig, resolve_dtype

    monkeypatch.setenv("PALR_CPU_BF16", "0")
    assert cpu_supports_bf16() is False
    assert TrainingConfig(bf16_autocast="auto").uses_bf16(torch.device("cpu")) is False
    if not torch.cuda.is_available():
        assert resolve_dtype(LLMConfig()) == torch.float32


def test_every_settings_class_of_a_preset_has_one_suffix():
    """SASRecConfig beside FinetuneConfig: one suffix, so a reader can tell a settings class by its name."""
    from palr_utils.presets import PRESETS

    for preset in PRESETS.values():
        settings = [getattr(preset, f.name) for f in dataclasses.fields(preset)]
        settings += [*preset.baseline_training_by_model.values(), *preset.baseline_models.values()]
        names = {type(value).__name__ for value in settings if dataclasses.is_dataclass(value)}
        assert names and all(name.endswith("Config") for name in names), names

"""Fine-tuning with TRL + peft: the prompt/completion data and the 4-bit QLoRA path on the CPU."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from palr_utils.core.io import StaleArtifactError
from palr_utils.finetune.sft import FinetuneConfig, adapter_fingerprint, finetune, to_sft_dataset
from palr_utils.llm.loading import LLMConfig, smollm2_folder

pytestmark = pytest.mark.integration  # real models, training or kernels: seconds each


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder())


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tokenizer):
    """A randomly initialised LLaMA with SmolLM2's vocabulary: seconds to train, same code path as 7B."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _rows(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame({
        "prompt": [f"The user's watching history:\n- Movie {i} (1990)\nRecommend 1 other movie." for i in range(n)],
        "completion": [f"Movie {i + 1} (1991)" for i in range(n)],
    })  # fmt: skip


def test_sft_rows_use_the_chat_template(tokenizer):
    dataset = to_sft_dataset(_rows(2), tokenizer)
    assert dataset.column_names == ["prompt", "completion"]
    assert dataset[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert dataset[0]["completion"] == "Movie 1 (1991)"


def test_qlora_in_4bit_trains_a_lora_adapter_on_cpu(tiny_llama, tokenizer, tmp_path):
    spec = FinetuneConfig(max_steps=3, batch_size=4, max_length=128, learning_rate=1e-3, save_steps=2)
    result = finetune(LLMConfig(str(tiny_llama), load_in_4bit=True), tokenizer, to_sft_dataset(_rows(), tokenizer),
                      tmp_path, spec)  # fmt: skip
    assert result.quantized_4bit, "SFTTrainer should have loaded the model through bitsandbytes in 4-bit"
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert len(result.history) == 3 and result.history["loss"].notna().all()
    assert (tmp_path / "checkpoint-2").exists()  # checkpoints to resume from


def test_finished_run_is_reused_and_interrupted_run_resumes(tiny_llama, tokenizer, tmp_path, monkeypatch):
    spec = FinetuneConfig(max_steps=2, batch_size=4, max_length=128, save_steps=1)
    dataset = to_sft_dataset(_rows(), tokenizer)
    first = finetune(LLMConfig(str(tiny_llama), dtype="float32"), tokenizer, dataset, tmp_path, spec)
    assert not first.quantized_4bit
    again = finetune(LLMConfig(str(tiny_llama), dtype="float32"), tokenizer, dataset, tmp_path, spec)
    pd.testing.assert_frame_equal(first.history, again.history)  # nothing retrained
    assert first.train_seconds > 0 and again.train_seconds == first.train_seconds  # read back from the log

    # Simulate an interruption after step 2 of 4: remove the finished adapter, keep the checkpoints.
    import shutil

    shutil.rmtree(first.adapter_dir)  # the training log lives inside it
    spent_by_step_2 = json.loads((tmp_path / "checkpoint-2" / "time_spent.json").read_text())["seconds"]
    from trl import SFTTrainer

    resumed_from = []
    original_train = SFTTrainer.train

    def recording_train(self, *args, **kwargs):
        resumed_from.append(kwargs.get("resume_from_checkpoint"))
        return original_train(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "train", recording_train)
    longer = FinetuneConfig(max_steps=4, batch_size=4, max_length=128, save_steps=1)
    resumed = finetune(LLMConfig(str(tiny_llama), dtype="float32"), tokenizer, dataset, tmp_path, longer)
    assert resumed_from == [str(tmp_path / "checkpoint-2")]
    assert resumed.history["step"].tolist() == [1, 2, 3, 4]
    # steps 1-2 are the logged values restored from the checkpoint, not a rerun
    pd.testing.assert_frame_equal(resumed.history.iloc[:2], first.history)
    # the training time counts both segments: the clock restarts from the checkpoint's record
    assert resumed.train_seconds > spent_by_step_2 > 0


def test_an_adapter_without_its_log_is_refused_with_what_to_delete(tiny_llama, tokenizer, tmp_path):
    """The adapter and its log land in one rename; a folder holding one without the other was written by something
    else (an older version), and is not guessed at: the error names what to delete, and then training finishes."""
    import shutil

    spec = FinetuneConfig(max_steps=2, batch_size=4, max_length=128, save_steps=1)
    llm, dataset = LLMConfig(str(tiny_llama), dtype="float32"), to_sft_dataset(_rows(), tokenizer)
    first = finetune(llm, tokenizer, dataset, tmp_path, spec)
    assert (first.adapter_dir / "log_history.json").exists()  # saved with the weights, in one rename
    (first.adapter_dir / "log_history.json").unlink()
    with pytest.raises(StaleArtifactError, match=f"Delete {first.adapter_dir} to finish training"):
        finetune(llm, tokenizer, dataset, tmp_path, spec)
    (first.adapter_dir / "adapter_config.json").unlink()
    with pytest.raises(StaleArtifactError, match="holds no adapter weights"):
        finetune(llm, tokenizer, dataset, tmp_path, spec)
    shutil.rmtree(first.adapter_dir)
    again = finetune(llm, tokenizer, dataset, tmp_path, spec)  # from the final checkpoint, no step retrained
    assert again.history["step"].tolist() == [1, 2]
    assert (again.adapter_dir / "adapter_config.json").exists()


def test_a_log_without_the_training_time_is_refused_with_the_command_that_rebuilds_it(tmp_path):
    from palr_utils.finetune.sft import _read_result

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    old_log = {"history": [{"step": 1, "loss": 2.0}], "quantized_4bit": False}  # no "train_seconds", no "target"
    (adapter / "log_history.json").write_text(json.dumps(old_log))
    with pytest.raises(StaleArtifactError, match="train_seconds, target.*palr_utils.finetune.cli"):
        _read_result(adapter / "log_history.json", adapter)


def test_time_budget_stops_training_early_and_still_saves(tiny_llama, tokenizer, tmp_path):
    spec = FinetuneConfig(max_steps=50, batch_size=4, max_length=128, max_minutes=1e-6)
    result = finetune(LLMConfig(str(tiny_llama), dtype="float32"), tokenizer, to_sft_dataset(_rows(), tokenizer),
                      tmp_path, spec)  # fmt: skip
    assert result.history["step"].tolist() == [1]
    assert (result.adapter_dir / "adapter_config.json").exists()


def test_lora_on_the_last_layers_only_adapts_those_layers(tiny_llama, tokenizer, tmp_path):
    from safetensors.torch import load_file

    spec = FinetuneConfig(max_steps=1, batch_size=4, max_length=128, lora_last_layers=1)
    result = finetune(LLMConfig(str(tiny_llama)), tokenizer, to_sft_dataset(_rows(), tokenizer), tmp_path, spec)
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    adapted = {name.split("layers.")[1].split(".")[0] for name in weights}
    assert adapted == {"1"}  # the tiny model has layers 0 and 1; only the last one has adapters


def test_a_run_with_other_examples_or_settings_is_refused_not_reused(tiny_llama, tokenizer, tmp_path):
    spec = FinetuneConfig(max_steps=1, batch_size=4, max_length=128)
    llm = LLMConfig(str(tiny_llama), dtype="float32")
    result = finetune(llm, tokenizer, to_sft_dataset(_rows(), tokenizer), tmp_path, spec)
    assert len(adapter_fingerprint(result.adapter_dir)) == 64
    other_rows = _rows().assign(completion=lambda f: f["completion"].str.replace("1991", "1992"))
    with pytest.raises(StaleArtifactError, match="examples_sha256"):
        finetune(llm, tokenizer, to_sft_dataset(other_rows, tokenizer), tmp_path, spec)
    with pytest.raises(StaleArtifactError, match="finetune"):
        finetune(llm, tokenizer, to_sft_dataset(_rows(), tokenizer), tmp_path, FinetuneConfig(max_steps=1, lora_r=4))


def test_the_listwise_trainer_ranks_parallel_candidates_and_is_part_of_its_identity(tiny_llama, tokenizer, tmp_path):
    from palr_utils.palr_rank.scoring import verdict_token_ids
    from palr_utils.palr_rank.trainer import listwise_trainer_class, to_rank_dataset

    rows = pd.DataFrame({
        "prompt": [f"History: Movie {i}\nFor each candidate movie, answer Yes or No." for i in range(8)],
        "candidate_titles": [["Alpha (1990)", "Beta (1991)", "Gamma (1992)", "Delta (1993)"]] * 8,
        "answer": [i % 4 for i in range(8)],
    })  # fmt: skip
    dataset = to_rank_dataset(rows, tokenizer)
    verdict_ids = verdict_token_ids(tokenizer, dataset[0]["prompt"])
    llm, spec = LLMConfig(str(tiny_llama), dtype="float32"), FinetuneConfig(max_steps=3, batch_size=4, max_length=128)
    result = finetune(llm, tokenizer, dataset, tmp_path, spec, trainer_class=listwise_trainer_class(),
                      trainer_kwargs={"verdict_ids": verdict_ids})  # fmt: skip
    losses = result.history["loss"]
    assert len(losses) == 3 and losses.notna().all()
    assert abs(losses.iloc[0] - np.log(4)) < 1.0  # a random model is close to a uniform guess among 4 candidates
    with pytest.raises(StaleArtifactError, match="objective"):  # the usual loss over the same folder is refused
        finetune(llm, tokenizer, dataset, tmp_path, spec)


def test_residual_training_starts_from_the_retrievers_loss_and_is_another_run(tiny_llama, tokenizer, tmp_path):
    from palr_utils.palr_rank.scoring import verdict_token_ids
    from palr_utils.palr_rank.trainer import listwise_trainer_class, rank_trainer_kwargs, to_rank_dataset

    answers = [i % 4 for i in range(8)]
    prior = [np.log(np.where(np.arange(4) == a, 0.97, 0.01)).tolist() for a in answers]  # a confident retriever
    rows = pd.DataFrame({
        "prompt": [f"History: Movie {i}\nFor each candidate movie, answer Yes or No." for i in range(8)],
        "candidate_titles": [["Alpha (1990)", "Beta (1991)", "Gamma (1992)", "Delta (1993)"]] * 8,
        "answer": answers, "prior": prior,
    })  # fmt: skip
    llm, spec = LLMConfig(str(tiny_llama), dtype="float32"), FinetuneConfig(max_steps=2, batch_size=4, max_length=128)
    verdict_ids = verdict_token_ids(tokenizer, to_rank_dataset(rows, tokenizer)[0]["prompt"])
    with pytest.raises(ValueError, match="needs the retriever's priors"):
        finetune(llm, tokenizer, to_rank_dataset(rows, tokenizer), tmp_path / "no_priors", spec,
                 trainer_class=listwise_trainer_class(), trainer_kwargs=rank_trainer_kwargs(verdict_ids, True))
    dataset = to_rank_dataset(rows, tokenizer, residual=True)
    result = finetune(llm, tokenizer, dataset, tmp_path / "residual", spec, trainer_class=listwise_trainer_class(),
                      trainer_kwargs=rank_trainer_kwargs(verdict_ids, True))  # fmt: skip
    # an untrained LLM's scores are small: the loss starts near the retriever's own, -ln 0.97, far below ln 4
    assert result.history["loss"].iloc[0] < 0.5 < np.log(4)
    assert rank_trainer_kwargs(verdict_ids, False) == {"verdict_ids": list(verdict_ids)}  # other runs' identities
    with pytest.raises(StaleArtifactError, match="objective"):  # the plain listwise loss over the same folder
        finetune(llm, tokenizer, to_rank_dataset(rows, tokenizer), tmp_path / "residual", spec,
                 trainer_class=listwise_trainer_class(), trainer_kwargs=rank_trainer_kwargs(verdict_ids, False))


def test_the_listwise_ranking_trainer_learns_to_put_the_right_candidate_first(tiny_llama, tokenizer, tmp_path):
    """PALR-rank's trainer on a signal a model can learn: the right candidate is always titled "gold".

    On tiny's invented titles there is nothing to learn in notebook 04's 8 steps (its loss stays near ln K);
    here the loss must fall well below chance, or the trainer, its masks or its loss are broken.
    """
    from palr_utils.palr_rank.scoring import verdict_token_ids
    from palr_utils.palr_rank.trainer import listwise_trainer_class, to_rank_dataset

    rng = np.random.default_rng(0)
    words = ["apple", "river", "stone", "cloud", "paper", "glass", "chair", "bread"]
    rows = []
    for _ in range(48):
        titles = list(rng.choice(words, 3, replace=False))
        answer = int(rng.integers(0, 4))
        titles.insert(answer, "gold")
        rows.append({"prompt": "Which of these is gold?", "candidate_titles": titles, "answer": answer})
    examples = pd.DataFrame(rows)
    llm = LLMConfig(str(tiny_llama), dtype="float32")
    dataset = to_rank_dataset(examples, tokenizer)
    verdicts = verdict_token_ids(tokenizer, dataset[0]["prompt"])
    spec = FinetuneConfig(max_steps=16, batch_size=4, max_length=128, learning_rate=1e-2, group_by_length=False,
                        target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))  # fmt: skip
    result = finetune(llm, tokenizer, dataset, tmp_path, spec,
                      trainer_class=listwise_trainer_class(), trainer_kwargs={"verdict_ids": verdicts})  # fmt: skip
    losses = result.history["loss"]
    assert abs(losses.iloc[0] - np.log(4)) < 0.5  # a random model: close to a uniform guess among 4
    assert losses.tail(6).mean() < np.log(4) - 0.7  # learned: well below chance


def test_item_tokens_learn_what_only_the_retrievers_embeddings_tell_and_travel_with_the_adapter(
    tiny_llama, tokenizer, tmp_path
):
    """Every title is the same: only the item tokens (a table where the answers' rows differ) tell the right
    candidate. The projector trains beside the adapter, is saved with it and in checkpoints, and a resumed run
    goes on from the checkpoint's projector, not a fresh one."""
    from palr_utils.palr_rank.item_tokens import ITEM_SLOT, ITEM_TOKENS_FILE, ItemTable, load_item_tokens
    from palr_utils.palr_rank.scoring import verdict_token_ids
    from palr_utils.palr_rank.trainer import listwise_trainer_class, rank_trainer_kwargs, to_rank_dataset

    rng = np.random.default_rng(0)
    weight = torch.randn(13, 8, generator=torch.Generator().manual_seed(0))
    weight[1:5, 0], weight[5:, 0] = 4.0, -4.0  # items 0-3 are the answers' kind, 4-11 never are
    table = ItemTable(weight, "twin")
    rows = []
    for _ in range(48):
        listed = [int(rng.integers(0, 4)), *map(int, rng.choice(np.arange(4, 12), 3, replace=False))]
        order = rng.permutation(4)
        history = [int(rng.integers(0, 12))]
        rows.append({"prompt": f"History:\n- Movie{ITEM_SLOT}\nFor each candidate, answer Yes or No.",
                     "candidate_titles": ["Movie"] * 4, "candidates": [listed[k] for k in order],
                     "history": history, "answer": int(np.argmax(order == 0))})  # fmt: skip
    examples = pd.DataFrame(rows)
    dataset = to_rank_dataset(examples, tokenizer, item_slots=True)
    verdicts = verdict_token_ids(tokenizer, dataset[0]["prompt"])
    llm = LLMConfig(str(tiny_llama), dtype="float32")
    spec = FinetuneConfig(max_steps=16, batch_size=4, max_length=128, learning_rate=1e-2, group_by_length=False,
                          save_steps=8)  # fmt: skip
    kwargs = rank_trainer_kwargs(verdicts, False, table, item_tokens_lr=1e-2)
    result = finetune(llm, tokenizer, dataset, tmp_path, spec, trainer_class=listwise_trainer_class(),
                      trainer_kwargs=kwargs)  # fmt: skip
    losses = result.history["loss"]
    # identical lines score alike, so without the item tokens the loss could not leave ln 4
    assert abs(losses.iloc[0] - np.log(4)) < 0.5 and losses.tail(6).mean() < np.log(4) - 0.5  # learned
    assert (result.adapter_dir / ITEM_TOKENS_FILE).exists() and (tmp_path / "checkpoint-16" / ITEM_TOKENS_FILE).exists()
    identity = json.loads((tmp_path / "run_identity.json").read_text())["objective"]["item_table"]
    assert identity == table.identity()  # the table by its contents
    first = adapter_fingerprint(result.adapter_dir)
    # The checkpoint's projector made blank (every item's token the same): a run that resumes from it reads it, so
    # its first step cannot tell the identical lines apart (loss ln 4); a fresh projector would tell them apart.
    blank = load_item_tokens(tmp_path / "checkpoint-16", table)
    torch.nn.init.zeros_(blank.projector[-1].weight)
    torch.nn.init.zeros_(blank.projector[-1].bias)
    blank.save(tmp_path / "checkpoint-16")
    longer = finetune(llm, tokenizer, dataset, tmp_path, FinetuneConfig(**{**spec.__dict__, "max_steps": 20}),
                      trainer_class=listwise_trainer_class(), trainer_kwargs=kwargs)  # fmt: skip
    resumed = longer.history[longer.history["step"] > 16]["loss"]
    assert len(resumed) == 4 and resumed.iloc[0] == pytest.approx(np.log(4), abs=0.05)  # (LoRA dropout: not exact)
    assert adapter_fingerprint(longer.adapter_dir) != first  # the projector is part of what caches record
    with pytest.raises(ValueError, match="item slots"):
        finetune(llm, tokenizer, to_rank_dataset(examples, tokenizer), tmp_path / "plain", spec,
                 trainer_class=listwise_trainer_class(), trainer_kwargs=kwargs)


def test_a_finished_run_asked_to_train_longer_trains_only_the_missing_steps(tiny_llama, tokenizer, tmp_path):
    llm, dataset = LLMConfig(str(tiny_llama), dtype="float32"), to_sft_dataset(_rows(), tokenizer)
    spec = FinetuneConfig(max_steps=2, batch_size=4, max_length=128, save_steps=1)
    first = finetune(llm, tokenizer, dataset, tmp_path, spec)
    with pytest.warns(UserWarning, match="training on from the last checkpoint"):
        longer = finetune(llm, tokenizer, dataset, tmp_path, FinetuneConfig(**{**spec.__dict__, "max_steps": 3}))
    assert longer.history["step"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(longer.history.iloc[:2], first.history)  # steps 1-2 kept, not retrained
    with pytest.raises(StaleArtifactError, match="not longer"):  # fewer steps cannot be had by training on
        finetune(llm, tokenizer, dataset, tmp_path, spec)


def test_a_run_stopped_after_its_last_checkpoint_is_finished_from_it_without_another_step(
    tiny_llama, tokenizer, tmp_path, monkeypatch
):
    """Killed between its final checkpoint and saving the adapter: resuming would make transformers take one
    step beyond max_steps (mid-epoch, at learning rate 0), so the checkpoint itself becomes the adapter."""
    import shutil

    from safetensors.torch import load_file
    from trl import SFTTrainer

    llm, dataset = LLMConfig(str(tiny_llama), dtype="float32"), to_sft_dataset(_rows(), tokenizer)
    spec = FinetuneConfig(max_steps=3, batch_size=4, max_length=128, save_steps=1)  # 2 steps an epoch: ends mid-epoch
    first = finetune(llm, tokenizer, dataset, tmp_path, spec)
    trained = load_file(first.adapter_dir / "adapter_model.safetensors")
    shutil.rmtree(first.adapter_dir)
    monkeypatch.setattr(SFTTrainer, "train", lambda *args, **kwargs: pytest.fail("trained beyond max_steps"))
    again = finetune(llm, tokenizer, dataset, tmp_path, spec)
    assert again.history["step"].tolist() == [1, 2, 3]
    assert again.train_seconds == pytest.approx(first.train_seconds, abs=1)
    restored = load_file(again.adapter_dir / "adapter_model.safetensors")
    assert restored.keys() == trained.keys() and all(torch.equal(restored[k], trained[k]) for k in trained)


def test_a_finished_run_asked_again_with_only_another_budget_is_reused(tiny_llama, tokenizer, tmp_path):
    llm, dataset = LLMConfig(str(tiny_llama), dtype="float32"), to_sft_dataset(_rows(), tokenizer)
    spec = FinetuneConfig(max_steps=2, batch_size=4, max_length=128, save_steps=1)
    first = finetune(llm, tokenizer, dataset, tmp_path, spec)
    again = finetune(llm, tokenizer, dataset, tmp_path, FinetuneConfig(**{**spec.__dict__, "max_minutes": 90.0}))
    pd.testing.assert_frame_equal(again.history, first.history)  # all its steps were done: nothing retrained


def test_the_completion_loss_is_sfttrainers_with_the_vocabulary_projection_only_where_it_is_read(
    tiny_llama, tokenizer, tmp_path
):  # fmt: skip
    from trl import SFTTrainer

    from palr_utils.finetune.sft import _sft_config, completion_trainer_class, lora_config

    # no LoRA dropout: its random masks would differ between the two passes
    spec = FinetuneConfig(max_steps=1, batch_size=4, max_length=128, lora_dropout=0.0)
    llm = LLMConfig(str(tiny_llama), dtype="float32")
    rows = _rows(4)
    rows["completion"] = [f"Movie {i + 1} (1991)\nMovie {i + 2} (1992)" for i in range(4)]  # answers of two lengths
    rows.loc[0, "prompt"] += " A longer prompt pads the others."
    dataset = to_sft_dataset(rows, tokenizer)

    def trainer(trainer_class):
        torch.manual_seed(0)  # the same adapter initialisation in both
        return trainer_class(model=str(tiny_llama), args=_sft_config(llm, spec, tmp_path / trainer_class.__name__, 0),
                             train_dataset=dataset, processing_class=tokenizer, peft_config=lora_config(spec))

    ours, trl = trainer(completion_trainer_class()), trainer(SFTTrainer)
    batch = next(iter(ours.get_train_dataloader()))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < labelled < batch["labels"][:, 1:].numel()  # the prompts are not labelled
    projected = []
    head = ours.model.get_base_model().get_output_embeddings()
    head.register_forward_hook(lambda module, args, output: projected.append(args[0].shape[0]))
    losses, gradients = [], []
    for run in (ours, trl):
        run.model.train()
        loss = run.compute_loss(run.model, dict(batch), num_items_in_batch=torch.tensor(labelled))
        loss.backward()
        losses.append(loss.item())
        gradients.append(torch.cat([p.grad.flatten() for p in run.model.parameters() if p.requires_grad]))
    assert projected == [labelled]  # one projection, of the labelled positions only
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-7)
